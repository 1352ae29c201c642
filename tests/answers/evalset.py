"""The answer evaluation: ingest the synthetic home-lab chat through the real pipeline, ask, score.

Used by test_eval.py (with bounds) and runnable for the figures:
    HF_HUB_OFFLINE=1 .venv/bin/python -m tests.answers.evalset [--no-embeddings]
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from homelabpi.asr import Word
from homelabpi.client import Client
from homelabpi.ingest import ingest
from homelabpi.keys import ClipKey, validate_id
from homelabpi.runtime import Runtime
from homelabpi.settings import Settings
from homelabpi.transcripts import ClipInfo, document, parse_time, segments_from_words

HERE = Path(__file__).resolve().parent / "eval"
WORD_SECONDS = 0.35


def load() -> tuple[dict, dict]:
    return (json.loads((HERE / "corpus.json").read_text()),
            json.loads((HERE / "questions.json").read_text()))


def _vtt(lines: list) -> str:
    def ts(sec: float) -> str:
        return f"{int(sec // 3600):02d}:{int(sec % 3600 // 60):02d}:{sec % 60:06.3f}"

    cues = []
    for offset, speaker, text in lines:
        end = offset + max(1.5, len(text.split()) * WORD_SECONDS)
        cues.append(f"{ts(offset)} --> {ts(end)}\n<v {speaker}>{text}")
    return "WEBVTT\n\n" + "\n\n".join(cues) + "\n"


def _clips(client: Client, session: dict, sid: str) -> None:
    """One transcript per speaker turn, as the bot's clips arrive: ASR words with timings."""
    start = parse_time(session["started_at"])
    store = client.runtime.store
    for n, (offset, speaker, text) in enumerate(session["lines"]):
        words = [Word(w, i * WORD_SECONDS, (i + 1) * WORD_SECONDS - 0.05, 0.9)
                 for i, w in enumerate(text.split())]
        key = ClipKey(session["guild"], sid, f"c{n:03d}")
        info = ClipInfo(guild=session["guild"], session=sid, clip=key.clip,
                        channel=session["channel"], speaker=speaker,
                        started_at=start + timedelta(seconds=offset), source="bot")
        doc = document(info, source_key=key.audio("ogg"), source_etag="", kind="audio",
                       engine="eval", duration=len(words) * WORD_SECONDS,
                       segments=segments_from_words(words, speaker))
        store.put(key.transcript, json.dumps(doc).encode(), content_type="application/json")
    client.deliver_events()


def build(data_dir: Path, *, embeddings: bool) -> tuple[Client, dict[str, set[str]]]:
    """A client on a fresh data dir with the corpus indexed; returns sessions per guild."""
    settings = Settings(data_dir=data_dir, embeddings=embeddings)
    client = Client(settings, Runtime(settings))
    corpus, _ = load()
    sessions: dict[str, set[str]] = {}
    tmp = data_dir / "vtt"
    tmp.mkdir(parents=True, exist_ok=True)
    for s in corpus["sessions"]:
        sid = validate_id(s["name"], "session")
        sessions.setdefault(s["guild"], set()).add(sid)
        if s["format"] == "vtt":
            path = tmp / f"{s['name']}.vtt"
            path.write_text(_vtt(s["lines"]))
            report = ingest(client, [path], guild=s["guild"], channel=s["channel"],
                            speaker=s["lines"][0][1], session=sid,
                            started_at=parse_time(s["started_at"]))
            assert report.ok, report.as_dict()
        else:
            _clips(client, s, sid)
    return client, sessions


@dataclass
class Result:
    answered: int = 0
    answer_ok: int = 0
    citation_ok: int = 0
    unanswerable: int = 0
    abstained: int = 0
    leaks: int = 0
    asked: int = 0
    failures: list[str] = field(default_factory=list)
    modes: dict[str, int] = field(default_factory=dict)

    def metrics(self) -> dict:
        return {
            "questions": self.asked,
            "answer_accuracy": round(self.answer_ok / max(1, self.answered), 3),
            "citation_accuracy": round(self.citation_ok / max(1, self.answered), 3),
            "correct_abstentions": round(self.abstained / max(1, self.unanswerable), 3),
            "cross_guild_leaks": self.leaks,
            "modes": self.modes,
        }


def _expected(q: dict) -> list[str]:
    """Accepted answers: one string, or a list when the speaker said several right things."""
    e = q.get("expect")
    return [] if e is None else [e] if isinstance(e, str) else list(e)


def run(client: Client, sessions: dict[str, set[str]]) -> Result:
    """Ask every question (threads in order) and score the answers."""
    _, qs = load()
    corpus, _ = load()
    said = {g: " ".join(t.lower() for s in corpus["sessions"] if s["guild"] == g
                        for _, _, t in s["lines"]) for g in sessions}
    # A leak shows as a foreign citation, or as a fact only another guild's recordings hold.
    foreign = {g: {e.lower() for q in qs["questions"] if q["guild"] != g
                   for e in _expected(q) if e.lower() not in said[g]} for g in sessions}
    res = Result()
    for q in qs["questions"]:
        guild = q["guild"]
        a = client.ask(q["q"], guild, asker="eval", thread=q.get("thread", ""), now=qs["now"])
        res.asked += 1
        res.modes[a["mode"]] = res.modes.get(a["mode"], 0) + 1
        leaked = [c["session"] for c in a["citations"] if c["session"] not in sessions[guild]]
        leaked += [f for f in foreign[guild] if f in a["answer"].lower()]
        if leaked:
            res.leaks += 1
            res.failures.append(f"LEAK {guild}: {q['q']} -> {leaked}")
        if q.get("unanswerable"):
            res.unanswerable += 1
            if a["mode"] == "not-found":
                res.abstained += 1
            else:
                res.failures.append(f"should abstain {guild}: {q['q']} -> {a['answer']!r}")
            continue
        res.answered += 1
        wants = [e.lower() for e in _expected(q)]
        top = a["citations"][0] if a["citations"] else None
        if any(w in a["answer"].lower() for w in wants):
            res.answer_ok += 1
        else:
            res.failures.append(f"answer {guild}: {q['q']} -> {a['answer']!r} ({a['mode']})")
        if top and top["speaker"] == q["speaker"] and any(
                w in top["text"].lower() or w == q["speaker"].lower() for w in wants):
            res.citation_ok += 1
        else:
            res.failures.append(f"citation {guild}: {q['q']} -> "
                                f"{(top or {}).get('speaker')}: {(top or {}).get('text')!r}")
    return res


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        client, sessions = build(Path(d), embeddings="--no-embeddings" not in sys.argv)
        result = run(client, sessions)
        print(json.dumps(result.metrics(), indent=2))
        print("\n".join(result.failures))
