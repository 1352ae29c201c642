"""Questions as people ask them: who, when, and "what about …" after a previous question.

"What did Bob say about the switch yesterday?" becomes the topic "the switch", a speaker filter
(Bob) and a time filter (yesterday, in the guild's time zone, relative to an injectable `now`).
In a Discord thread, "And Alice?" or "When was that?" is resolved against the thread's previous
question, which the query log keeps in its resolved form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from homelabpi.answering.retrieval import Filters, content_terms

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
           "seven": 7, "eight": 8, "nine": 9, "ten": 10, "couple": 2, "few": 3}
UNITS = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}
# Words after which a name is who was spoken to or about, not who spoke.
_OBJECT_OF = {"to", "tell", "told", "ask", "asked", "asks", "with", "for", "at", "about", "from"}
_FOLLOW_CUE = re.compile(r"^\s*(and|also|what about|how about|same for|what else|anything else|"
                         r"then)\b[\s,]*", re.I)
_ANAPHORA = {"it", "that", "this", "those", "these", "they", "them", "he", "she", "him", "her",
             "there", "its", "one"}
_NUM = r"(\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten|couple|few)"
_UNIT = r"(minute|hour|day|week)s?"
_SESSION = re.compile(r"\b(in |during )?(the )?(last|latest|previous|most recent) (session|call|"
                      r"meeting|chat)\b|\blast time\b", re.I)
# Words that say what kind of answer is wanted, not what it is about: "what IP", "which port".
ASKING = frozenset("""
ip ips address addresses port ports version versions time times password passwords model models
size sizes vlan vlans subnet number name names ram memory disk disks capacity date day when
use used using set give gave given run runs running pick picked decide decided decision buy
bought change changed move moved put install installed configure configured setup plan planned
""".split())


@dataclass(frozen=True)
class Question:
    """A question as understood: the words to search for plus who/when filters."""

    text: str  # as asked
    topic: str  # what to search for: speaker and time phrases removed, follow-ups resolved
    filters: Filters = field(default_factory=Filters)
    when: str = ""  # the time phrase as asked ("yesterday"), for the log
    follow_up: bool = False

    @property
    def terms(self) -> list[str]:
        return content_terms(self.topic)

    def resolved(self) -> dict:
        """What the query log keeps, so the thread's next question can build on this one."""
        f = self.filters
        return {"topic": self.topic, "speakers": list(f.speakers), "after": f.after,
                "before": f.before, "sessions": list(f.sessions), "when": self.when,
                "follow_up": self.follow_up}

    @classmethod
    def from_resolved(cls, doc: dict) -> Question:
        f = Filters(tuple(doc.get("speakers") or ()), doc.get("after"), doc.get("before"),
                    tuple(doc.get("sessions") or ()))
        topic = str(doc.get("topic") or "")
        return cls(text=topic, topic=topic, filters=f, when=str(doc.get("when") or ""))


def parse(text: str, *, speakers: list[str] = (), sessions: list[tuple[str, float]] = (),
          now: datetime | None = None, tz: str = "UTC", asker: str = "",
          previous: Question | dict | None = None) -> Question:
    """Read filters out of `text`; with `previous` (same thread), resolve a follow-up.

    `speakers` are the guild's known names; `sessions` are (id, started_at) pairs for "the last
    session"; `now` defaults to the current time (tests pass a fixed one).
    """
    now = now or datetime.now(ZoneInfo("UTC"))
    zone = ZoneInfo(tz)
    local_now = now.astimezone(zone)
    topic = " " + text.strip() + " "
    names, topic = _speakers(topic, speakers, asker)
    after = before = None
    when = ""
    session_ids: tuple[str, ...] = ()
    m = _SESSION.search(topic)
    if m and sessions:
        past = [s for s in sessions if s[1] <= now.timestamp()] or list(sessions)
        session_ids = (max(past, key=lambda s: s[1])[0],)
        when, topic = m.group(0).strip(), topic[:m.start()] + " " + topic[m.end():]
    span = _time_span(topic, local_now)
    if span is not None:
        after, before, (a, b) = span
        when = (when + " " + topic[a:b].strip()).strip()
        topic = topic[:a] + " " + topic[b:]
    topic = re.sub(r"\s+", " ", topic).strip(" ,")
    q = Question(text=text, topic=topic, filters=Filters(tuple(names), after, before,
                                                         session_ids), when=when)
    if previous is not None:
        prev = previous if isinstance(previous, Question) else Question.from_resolved(previous)
        q = _resolve(q, prev)
    return q


def _speakers(topic: str, known: list[str], asker: str) -> tuple[list[str], str]:
    """Known speaker names used as the speaker (not the addressee), removed from the topic."""
    found = []
    for name in sorted({n for n in known if n.strip()}, key=len, reverse=True):
        pat = re.compile(rf"(?<![\w'])({re.escape(name)})(?:'s|s')?(?![\w])", re.I)
        for m in list(pat.finditer(topic)):
            before = topic[:m.start()].split()
            if before and before[-1].lower().strip(",") in _OBJECT_OF:
                continue
            found.append(name)
            topic = topic[:m.start()] + " " + " " * (m.end() - m.start() - 1) + topic[m.end():]
    if asker and any(asker.lower() == n.lower() for n in known) and re.search(
            r"\b(did i|have i|i said|i mentioned|i say)\b", topic, re.I):
        found.append(next(n for n in known if n.lower() == asker.lower()))
    return list(dict.fromkeys(found)), topic


def _midnight(day: datetime) -> datetime:
    return day.replace(hour=0, minute=0, second=0, microsecond=0)


def _time_span(topic: str, now: datetime) -> tuple[float, float, tuple[int, int]] | None:
    """(after, before, (char start, char end)) of the first time phrase, in `now`'s zone."""
    today = _midnight(now)
    day = timedelta(days=1)
    rules: list[tuple[str, object]] = [
        (rf"\b(in |during |over )?the (last|past) {_NUM} {_UNIT}\b", "last_n"),
        (rf"\b(in |during |over )?the (last|past) {_UNIT}\b", "last_1"),
        (rf"\b{_NUM} {_UNIT} ago\b", "ago"),
        (r"\b(on |last |this )?(monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
         r"( morning| afternoon| evening| night)?\b", "weekday"),
        (r"\b(on )?(\d{4})-(\d{2})-(\d{2})\b", "date"),
        (r"\byesterday( morning| afternoon| evening)?\b", "yesterday"),
        (r"\blast night\b", "last_night"),
        (r"\bthis (morning|afternoon|evening)\b|\btonight\b", "today_part"),
        (r"\b(earlier )?today\b", "today"),
        (r"\b(this|last) week\b", "week"),
        (r"\b(this|last) month\b", "month"),
    ]
    best = None
    for pattern, kind in rules:
        m = re.search(pattern, topic, re.I)
        if m and (best is None or m.start() < best[0].start()):
            best = (m, kind)
    if best is None:
        return None
    m, kind = best
    g = [x.lower().strip() if x else "" for x in m.groups()]
    parts = {"morning": (0, 12), "afternoon": (12, 18), "evening": (18, 24), "night": (18, 30)}
    start = end = None
    if kind in ("last_n", "last_1"):
        n = 1 if kind == "last_1" else _number(g[2])
        unit = g[2] if kind == "last_1" else g[3]
        start, end = now - timedelta(seconds=n * UNITS[unit]), now
    elif kind == "ago":
        n, unit = _number(g[0]), g[1]
        if unit in ("minute", "hour"):
            at = now - timedelta(seconds=n * UNITS[unit])
            start, end = at - timedelta(seconds=UNITS[unit]), at + timedelta(seconds=UNITS[unit])
        else:
            start = today - timedelta(seconds=n * UNITS[unit])
            end = start + (day if unit == "day" else timedelta(seconds=UNITS[unit]))
    elif kind == "weekday":
        target = WEEKDAYS.index(g[1])
        back = (now.weekday() - target) % 7
        if g[0] == "last" and back == 0:
            back = 7
        start = today - back * day
        end = start + day
        if g[2]:
            lo, hi = parts[g[2]]
            start, end = start + timedelta(hours=lo), start + timedelta(hours=hi)
    elif kind == "date":
        start = now.replace(year=int(g[1]), month=int(g[2]), day=int(g[3]), hour=0, minute=0,
                            second=0, microsecond=0)
        end = start + day
    elif kind == "yesterday":
        start, end = today - day, today
        if g[0]:
            lo, hi = parts[g[0]]
            start, end = today - day + timedelta(hours=lo), today - day + timedelta(hours=hi)
    elif kind == "last_night":
        start, end = today - day + timedelta(hours=18), today + timedelta(hours=6)
    elif kind == "today_part":
        lo, hi = parts[g[0] or "evening"]
        start, end = today + timedelta(hours=lo), today + timedelta(hours=hi)
    elif kind == "today":
        start, end = today, today + day
    elif kind == "week":
        monday = today - now.weekday() * day
        start, end = (monday, monday + 7 * day) if g[0] == "this" else (monday - 7 * day, monday)
    elif kind == "month":
        first = today.replace(day=1)
        if g[0] == "this":
            start, end = first, (first + 32 * day).replace(day=1)
        else:
            start, end = (first - day).replace(day=1), first
    return start.timestamp(), end.timestamp(), (m.start(), m.end())


def _number(word: str) -> int:
    return int(word) if word.isdigit() else NUMBERS.get(word, 1)


def is_follow_up(q: Question) -> bool:
    """Only meaningful when the thread has a previous question."""
    words = [w.lower() for w in re.findall(r"[A-Za-z']+", q.topic)]
    if _FOLLOW_CUE.match(q.text) or not q.terms:
        return True
    return bool(_ANAPHORA & set(words)) and len(q.terms) <= 2


def _resolve(q: Question, prev: Question) -> Question:
    """Fill what a follow-up leaves out from the thread's previous question."""
    if not is_follow_up(q):
        return q
    f, pf = q.filters, prev.filters
    time_given = f.after is not None or f.before is not None or bool(f.sessions)
    filters = Filters(
        speakers=f.speakers or pf.speakers,
        after=f.after if time_given else pf.after,
        before=f.before if time_given else pf.before,
        sessions=f.sessions if time_given else pf.sessions)
    own = _FOLLOW_CUE.sub("", q.topic).strip(" ?.!,")
    own_terms = content_terms(own)
    words = {w.lower() for w in re.findall(r"[A-Za-z']+", own)}
    if not own_terms:
        topic = prev.topic
    elif _FOLLOW_CUE.match(q.text) and not (_ANAPHORA & words):
        topic = _substitute(prev.topic, own)
    else:
        extra = [t for t in content_terms(prev.topic) if t not in own_terms]
        topic = (own + " " + " ".join(extra)).strip()
    return replace(q, topic=topic, filters=filters, when=q.when or prev.when, follow_up=True)


def _substitute(previous: str, new_object: str) -> str:
    """'What IP did we give the NAS?' + 'the printer' → 'What IP did we give the printer?'.

    The previous question's last run of topic words (content words that are not ASKING words
    such as IP or port) is replaced: crude, but it keeps the question's frame, which is what a
    "what about X" follow-up means.
    """
    body = previous.rstrip(" ?.!")
    new = re.sub(r"^(the|a|an|our|my)\s+", "", new_object.strip(" ?.!,"), flags=re.I)
    words = list(re.finditer(r"[A-Za-z0-9]+(?:[-'][A-Za-z0-9]+)*", body))
    topical = [bool(content_terms(w.group())) and not set(content_terms(w.group())) & ASKING
               for w in words]
    end = next((i for i in range(len(words) - 1, -1, -1) if topical[i]), None)
    if end is None:
        return f"{body} {new}?"
    start = end
    while start > 0 and topical[start - 1]:
        start -= 1
    return f"{body[:words[start].start()]}{new}{body[words[end].end():]}?"
