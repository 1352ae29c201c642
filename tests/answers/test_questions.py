"""Speaker and time filters, and follow-ups, read against a fixed `now`."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from homelabpi.answering.questions import Question, parse

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)  # a Saturday
SPEAKERS = ["Alice", "Bob", "Carol Ann"]


def day(d: int, tz: str = "UTC") -> tuple[float, float]:
    start = datetime(2026, 11, d, tzinfo=ZoneInfo(tz))
    return start.timestamp(), start.timestamp() + 86400


@pytest.mark.parametrize(("text", "span"), [
    ("What did we decide yesterday?", day(20)),
    ("what did we say last Tuesday about DNS", day(17)),
    ("What happened on Monday?", day(16)),
    ("What did we say on Saturday?", day(21)),
    ("what did we say last Saturday?", day(14)),
    ("What was said 3 days ago?", day(18)),
    ("What did we decide on 2026-11-02?", day(2)),
])
def test_day_filters(text, span):
    q = parse(text, now=NOW)
    assert (q.filters.after, q.filters.before) == span
    assert q.when


def test_relative_windows_and_weeks():
    q = parse("anything about the NAS in the last 2 hours?", now=NOW)
    assert (q.filters.after, q.filters.before) == (NOW.timestamp() - 7200, NOW.timestamp())
    assert "hours" not in q.topic and "NAS" in q.topic
    q = parse("What did we decide last week?", now=NOW)
    assert (q.filters.after, q.filters.before) == (day(9)[0], day(16)[0])


def test_yesterday_is_read_in_the_guilds_time_zone():
    late = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)  # already Saturday in Berlin
    q = parse("what did we do yesterday", now=late, tz="Europe/Berlin")
    assert (q.filters.after, q.filters.before) == day(20, "Europe/Berlin")


def test_last_session_picks_the_latest_session_before_now():
    sessions = [("s-old", NOW.timestamp() - 86400 * 3), ("s-new", NOW.timestamp() - 3600),
                ("s-future", NOW.timestamp() + 3600)]
    q = parse("What did Bob say in the last session?", speakers=SPEAKERS, sessions=sessions,
              now=NOW)
    assert q.filters.sessions == ("s-new",)
    assert q.filters.speakers == ("Bob",)


def test_speaker_filter_is_the_speaker_not_the_addressee():
    q = parse("What did Alice tell Bob about the switch?", speakers=SPEAKERS, now=NOW)
    assert q.filters.speakers == ("Alice",)
    assert "Alice" not in q.topic and "switch" in q.topic
    q = parse("what was carol ann's plan for the UPS", speakers=SPEAKERS, now=NOW)
    assert q.filters.speakers == ("Carol Ann",)
    assert parse("what did we say about the switch", speakers=SPEAKERS).filters.speakers == ()


def test_i_means_the_asker_when_they_are_a_speaker():
    q = parse("What did I say about backups?", speakers=SPEAKERS, asker="bob", now=NOW)
    assert q.filters.speakers == ("Bob",)
    q = parse("What did I say about backups?", speakers=SPEAKERS, asker="stranger", now=NOW)
    assert q.filters.speakers == ()


def test_follow_up_names_a_new_speaker_and_keeps_the_topic_and_time():
    first = parse("What did Bob say about the switch yesterday?", speakers=SPEAKERS, now=NOW)
    second = parse("And Alice?", speakers=SPEAKERS, now=NOW, previous=first.resolved())
    assert second.follow_up
    assert second.filters.speakers == ("Alice",)
    assert (second.filters.after, second.filters.before) == day(20)
    assert "switch" in second.terms


def test_what_about_swaps_the_object_and_keeps_the_frame():
    first = parse("What IP does the Pi-hole have?", now=NOW)
    second = parse("What about the NAS?", now=NOW, previous=first.resolved())
    assert second.terms == ["ip", "nas"]


def test_pronoun_follow_up_carries_the_previous_topic():
    first = parse("What did Bob say about the Grafana dashboard?", speakers=SPEAKERS, now=NOW)
    second = parse("When did he set it up?", speakers=SPEAKERS, now=NOW,
                   previous=first.resolved())
    assert second.follow_up and second.filters.speakers == ("Bob",)
    assert {"grafana", "dashboard"} <= set(second.terms)


def test_a_new_question_in_a_thread_stands_alone():
    first = parse("What did Bob say about the switch yesterday?", speakers=SPEAKERS, now=NOW)
    second = parse("Which VLAN do the cameras use?", speakers=SPEAKERS, now=NOW,
                   previous=first.resolved())
    assert not second.follow_up
    assert second.filters.speakers == () and second.filters.after is None
    assert "switch" not in second.terms


def test_resolved_round_trips_through_the_log():
    q = parse("What did Bob say yesterday about DNS?", speakers=SPEAKERS, now=NOW)
    back = Question.from_resolved(q.resolved())
    assert back.filters == q.filters and back.topic == q.topic
