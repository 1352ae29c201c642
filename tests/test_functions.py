"""The three functions called as the gateway and the template call them: body in, status out."""

from __future__ import annotations

import json

import pytest

from homelabpi.events import make_event
from homelabpi.functions import invoke
from homelabpi.transcripts import ClipInfo, parse_time

META = ClipInfo(guild="g1", session="s1", clip="x", channel="lab", speaker="Alice",
                started_at=parse_time("2026-11-03T10:00:00Z")).metadata()


def event(rt, key, **kw):
    info = rt.store.stat(key) if not kw else None
    return make_event(bucket="homelabpi", key=key, etag=kw.get("etag", info and info.etag),
                      size=kw.get("size", info and info.size),
                      **({"name": kw["name"]} if "name" in kw else {}))


def ask(rt, question, guild="g1"):
    status, doc = invoke("answer", json.dumps({"question": question, "guild": guild}).encode(),
                         {}, rt)
    assert status == 200, doc
    return doc


def put_transcript(rt, guild, session, clip, speaker, text, when="2026-11-03T10:00:00Z"):
    from homelabpi.subtitles import parse
    from homelabpi.transcripts import document

    info = ClipInfo(guild=guild, session=session, clip=clip, channel="lab", speaker=speaker,
                    started_at=parse_time(when))
    segments = parse(f"WEBVTT\n\n00:00:00.000 --> 00:00:04.000\n{text}\n", speaker, "t.vtt")
    key = f"transcripts/{guild}/{session}/{clip}.json"
    rt.store.put(key, json.dumps(document(info, source_key=key, source_etag="", kind="subtitles",
                                          engine="subtitles", duration=4.0,
                                          segments=segments)).encode())
    return key


def test_transcribe_then_index_real_speech(rt, librivox):
    path = next(iter(librivox))
    rt.store.put("audio/g1/s1/c1.wav", path.read_bytes(), metadata=META)
    status, doc = invoke("transcribe", event(rt, "audio/g1/s1/c1.wav"), {}, rt)
    assert status == 200 and doc["results"][0]["outcome"] == "transcribed"
    transcript = json.loads(rt.store.get("transcripts/g1/s1/c1.json"))
    assert transcript["speaker"] == "Alice" and transcript["segments"]
    assert rt.store.stat("transcripts/g1/s1/c1.json").metadata["source-etag"] == (
        rt.store.stat("audio/g1/s1/c1.wav").etag)
    status, doc = invoke("index", event(rt, "transcripts/g1/s1/c1.json"), {}, rt)
    assert status == 200 and doc["results"][0]["outcome"] == "indexed"

    # The same events again (at-least-once delivery) change nothing and decode nothing.
    status, doc = invoke("transcribe", event(rt, "audio/g1/s1/c1.wav"), {}, rt)
    assert doc["results"][0]["outcome"] == "unchanged"
    status, doc = invoke("index", event(rt, "transcripts/g1/s1/c1.json"), {}, rt)
    assert doc["results"][0]["outcome"] == "unchanged"


@pytest.mark.parametrize("body, message", [
    (b"{not json", "not JSON"),
    (b'{"Records": "x"}', "no 'Records' list"),
    (b'{"Records": [{"eventName": "s3:ObjectCreated:Put"}]}', "record 0 is malformed"),
    (make_event(bucket="b", key="audio/../../../etc/passwd", etag="e", size=1), "'..'"),
])
def test_malformed_events_get_400_with_a_message(rt, body, message):
    for name in ("transcribe", "index"):
        status, doc = invoke(name, body, {}, rt)
        assert status == 400 and message in doc["error"]


def test_bad_records_do_not_stop_good_ones(rt, librivox):
    path = next(iter(librivox))
    rt.store.put("audio/g1/s1/good.wav", path.read_bytes(), metadata=META)
    rt.store.put("audio/g1/s1/corrupt.ogg", b"OggS" + b"\x00garbage" * 50, metadata=META)
    rt.store.put("audio/g1/s1/empty.ogg", b"", metadata=META)
    rt.store.put("audio/g1/s1/nometa.ogg", path.read_bytes())
    records = []
    for key in ("audio/g1/s1/corrupt.ogg", "audio/g1/s1/empty.ogg", "audio/g1/s1/nometa.ogg",
                "audio/g1/s1/missing.ogg", "audio/g1/s1/good.wav"):
        info = rt.store.stat(key) if key != "audio/g1/s1/missing.ogg" else None
        records += json.loads(make_event(bucket="homelabpi", key=key,
                                         etag=info.etag if info else "x", size=1))["Records"]
    status, doc = invoke("transcribe", json.dumps({"Records": records}).encode(), {}, rt)
    by_key = {r["key"]: r for r in doc["results"]}
    assert status == 404  # the worst record decides the status; every record has its result
    assert "could not decode audio" in by_key["audio/g1/s1/corrupt.ogg"]["error"]
    assert "the file is empty" in by_key["audio/g1/s1/empty.ogg"]["error"]
    assert "lacks speaker" in by_key["audio/g1/s1/nometa.ogg"]["error"]
    assert "no object" in by_key["audio/g1/s1/missing.ogg"]["error"]
    assert by_key["audio/g1/s1/good.wav"]["outcome"] == "transcribed"
    # Undecodable audio still gets a transcript marked failed, so the failure is visible.
    failed = json.loads(rt.store.get("transcripts/g1/s1/corrupt.json"))
    assert failed["status"] == "failed" and "could not decode" in failed["error"]
    assert json.loads(rt.store.get("transcripts/g1/s1/good.json"))["status"] == "ok"


def test_index_reads_the_store_not_the_event(rt):
    key = put_transcript(rt, "g1", "s1", "c1", "Alice", "the router is in the hallway")
    old_etag = rt.store.stat(key).etag
    put_transcript(rt, "g1", "s1", "c1", "Alice", "the router moved to the attic")
    # A late event for the older version indexes what is stored now.
    invoke("index", make_event(bucket="homelabpi", key=key, etag=old_etag, size=1), {}, rt)
    assert "attic" in ask(rt, "where is the router?")["answer"]


def test_transcript_claiming_another_guild_is_refused(rt):
    key = put_transcript(rt, "g2", "s1", "c1", "Mallory", "the password is hunter2")
    doc = json.loads(rt.store.get(key))
    rt.store.put("transcripts/g1/s1/c1.json", json.dumps(doc).encode())
    status, out = invoke("index", event(rt, "transcripts/g1/s1/c1.json"), {}, rt)
    assert status == 400 and "guild 'g2'" in out["results"][0]["error"]
    assert ask(rt, "what is the password?")["citations"] == []


def test_removed_transcript_leaves_the_index(rt):
    key = put_transcript(rt, "g1", "s1", "c1", "Alice", "the ups battery was replaced")
    invoke("index", event(rt, key), {}, rt)
    assert ask(rt, "was the ups battery replaced?")["citations"]
    info = rt.store.stat(key)
    rt.store.delete(key)
    invoke("index", make_event(bucket="homelabpi", key=key, etag=info.etag, size=0,
                               name="s3:ObjectRemoved:Delete"), {}, rt)
    assert ask(rt, "was the ups battery replaced?")["citations"] == []


def test_guilds_never_see_each_other(rt):
    for guild, ip in (("g1", "ten dot zero dot zero dot five"), ("g2", "one nine two dot one")):
        key = put_transcript(rt, guild, f"s-{guild}", "c1", "Alice", f"the nas address is {ip}")
        invoke("index", event(rt, key), {}, rt)
    a1, a2 = ask(rt, "what is the nas address?", "g1"), ask(rt, "what is the nas address?", "g2")
    assert "ten" in a1["answer"] and "nine" in a2["answer"]
    assert {c["session"] for c in a1["citations"]} == {"s-g1"}
    assert {c["session"] for c in a2["citations"]} == {"s-g2"}
    assert ask(rt, "what is the nas address?", "g3")["citations"] == []


@pytest.mark.parametrize("req, message", [
    ({"question": "x"}, "guild"), ({"guild": "../g1", "question": "x"}, "guild"),
    ({"guild": "g1"}, "'question' is required"), ({"guild": "g1", "op": "drop"}, "unknown op"),
    ({"guild": "g1", "op": "search", "text": "nas", "limit": "lots"}, "whole number"),
    ([1, 2], "JSON object"),
])
def test_bad_answer_requests(rt, req, message):
    status, doc = invoke("answer", json.dumps(req).encode(), {}, rt)
    assert status == 400 and message in doc["error"]


def test_token_required_when_configured(rt, monkeypatch):
    monkeypatch.setenv("HOMELABPI_TOKEN_HOMELABPI_TOKEN", "s3cret")
    body = json.dumps({"guild": "g1", "question": "anything"}).encode()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
        status, doc = invoke("answer", body, headers, rt)
        assert (status, doc) == (401, {"error": "unauthorized"})
    assert invoke("answer", body, {"Authorization": "Bearer s3cret"}, rt)[0] == 200


def test_unknown_function(rt):
    assert invoke("nope", b"{}", {}, rt)[0] == 404


def test_index_and_answer_need_no_audio_stack():
    """Their images install no speech stack (see functions/*/requirements.txt)."""
    import subprocess
    import sys

    code = ("import sys\n"
            "for m in ('av', 'faster_whisper', 'ctranslate2', 'sentencex', 'vosk'):\n"
            "    sys.modules[m] = None\n"
            "import homelabpi.functions as f, homelabpi.client, homelabpi.forget\n"
            "print(sorted(f.FUNCTIONS))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "answer" in out.stdout


def test_a_shard_being_created_is_not_an_error(rt):
    """The index creates a shard file, then its schema: a reader in between sees no tables."""
    import sqlite3

    path = rt.shards.path("g1", "2026-11")
    path.parent.mkdir(parents=True)
    sqlite3.connect(path).close()  # the file exists, the migration has not committed yet
    status, doc = invoke("answer", json.dumps({"guild": "g1", "op": "status",
                                               "keys": ["transcripts/g1/s/c.json"]}).encode(),
                         {}, rt)
    assert (status, doc) == (200, {"clips": {}})
    assert ask(rt, "where is the nas?")["citations"] == []
