"""Words with times → segments that read like speech: sentences with their own start and end."""

from __future__ import annotations

from homelabpi.asr import Word
from homelabpi.transcripts import SEGMENT_MAX_SECONDS, segments_from_words


def spoken(text: str, start: float = 0.0, pace: float = 0.35,
           pauses: dict[int, float] | None = None) -> list[Word]:
    """One Word per token, `pace` seconds apart; `pauses` adds silence before token i."""
    words, t = [], start
    for i, token in enumerate(text.split()):
        t += (pauses or {}).get(i, 0.0)
        words.append(Word(token, t, t + 0.3, 0.9))
        t += pace
    return words


def texts(words: list[Word]) -> list[str]:
    return [s["text"] for s in segments_from_words(words, "Alice")]


def test_a_segment_is_a_sentence_and_names_stay_whole():
    got = texts(spoken("The NAS is at 10.0.0.50 now. Mr. Smith moved it to VLAN 20 yesterday. "
                       "What about k3s v1.30 on the Pi?"))
    assert got == ["The NAS is at 10.0.0.50 now.", "Mr. Smith moved it to VLAN 20 yesterday.",
                   "What about k3s v1.30 on the Pi?"]


def test_short_sentences_join_the_next_unless_a_pause_divides_them():
    assert texts(spoken("Okay. The backups run at two. Yes. Fine, do it.")) == [
        "Okay. The backups run at two.", "Yes. Fine, do it."]
    # A pause of 2 s after "Okay." leaves it alone.
    assert texts(spoken("Okay. The backups run at two.", pauses={1: 2.0})) == [
        "Okay.", "The backups run at two."]


def test_each_segment_has_its_own_times_and_words():
    words = spoken("We moved the cameras. They record to the new pool.")
    first, second = segments_from_words(words, "Bob")
    assert (first["start"], first["end"]) == (words[0].start, round(words[3].end, 3))
    assert second["start"] == round(words[4].start, 3)
    assert [w["text"] for w in second["words"]] == "They record to the new pool.".split()
    assert first["speaker"] == "Bob" and 0 < first["confidence"] <= 1


def test_runaway_sentences_are_cut_at_pauses_and_at_the_length_limit():
    long = spoken(" ".join(["word"] * 80) + ".")  # 28 s without a full stop
    segs = segments_from_words(long, "A")
    assert len(segs) >= 2 and all(s["end"] - s["start"] <= SEGMENT_MAX_SECONDS for s in segs)
    paused = texts(spoken("So we went to the shop and then we came back.", pauses={8: 1.2}))
    assert paused == ["So we went to the shop and then", "we came back."]


def test_without_punctuation_pauses_decide():
    """Vosk writes no punctuation: a pause of 0.8 s or more starts a segment."""
    words = spoken("hello there how are you fine thanks", pauses={2: 1.0, 5: 0.9})
    assert texts(words) == ["hello there", "how are you", "fine thanks"]
    assert segments_from_words([], "A") == []
