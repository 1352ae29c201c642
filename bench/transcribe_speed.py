"""Transcription speed with the bundled pocketsphinx engine, and HomeLabPi's overhead over it.

Speed is audio seconds per CPU second (time.process_time), engine loaded first. Overhead
compares, on the same clips, (a) a pocketsphinx Decoder called directly on the clip's PCM
(process_raw with full_utt, as the engine does) with (b) the whole transcribe function,
`invoke("transcribe", event)` for the clip stored as Ogg Opus (the bot's format) in a local store:
PyAV decode, engine, transcript JSON, store put and outbox record. Target: (b) costs under 10%
more CPU than (a). Clips are the five LibriVox utterances plus espeak-ng home-lab talk, all
under a minute (one utterance each, like the bot's per-speaker clips); (a) and (b) alternate
clip by clip so background load hits both alike. WER on LibriVox is printed for context.

    .venv/bin/python bench/transcribe_speed.py [--quick] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from corpus import librivox, machine, ogg_opus, pcm_of, seconds_of, speak, table, wer
from pocketsphinx import Decoder

from homelabpi.asr import load_engine
from homelabpi.audio import SAMPLE_RATE, decode
from homelabpi.auth import auth_header
from homelabpi.events import make_event
from homelabpi.functions import invoke
from homelabpi.keys import ClipKey, new_id
from homelabpi.runtime import Runtime
from homelabpi.settings import Settings
from homelabpi.transcripts import ClipInfo

TARGET_OVERHEAD = 0.10
GUILD, SESSION = "bench-guild", "s-bench"
SPOKEN = [
    "okay so the proxmox node in the rack keeps rebooting every night around three, I think "
    "the power supply is on its way out, so I ordered a replacement and it should arrive on "
    "friday. until then the backups go to the nas instead.",
    "we moved the security cameras to their own vlan, forty two, and frigate now records to the "
    "new zfs pool. the old disk was full anyway.",
    "can someone check why grafana stopped showing the temperature sensors? prometheus is still "
    "scraping them, the dashboard just shows no data since the upgrade yesterday. it might be "
    "the new version of the plugin, or the data source url changed when we moved the container "
    "to the other host.",
]


def direct(decoder: Decoder, pcm: bytes) -> list[str]:
    """What the engine does for a clip under a minute, minus HomeLabPi."""
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    return [s.word for s in decoder.seg()] if decoder.hyp() is not None else []


def upload(rt: Runtime, body: bytes) -> bytes:
    """Put a clip as the bot would (untimed); returns the bucket event for it."""
    clip = ClipKey(GUILD, SESSION, new_id("c"))
    info = ClipInfo(guild=GUILD, session=SESSION, clip=clip.clip, channel="lab", speaker="bench",
                    started_at=datetime.now(UTC), source="bot")
    key = clip.audio("ogg")
    stored = rt.store.put(key, body, content_type="audio/ogg", metadata=info.metadata())
    return make_event(bucket=rt.store.bucket, key=key, etag=stored.etag, size=stored.size)


def cpu(fn, *args) -> tuple[float, float, object]:
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn(*args)
    return time.process_time() - c0, time.perf_counter() - w0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="LibriVox clips only, one pass")
    ap.add_argument("--repeats", type=int, help="passes over the clips (default 3)")
    args = ap.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    print(f"machine: {machine()}")

    wavs = librivox()
    clips = [ogg_opus(pcm_of(path)) for path, _ in wavs]
    if not args.quick:
        clips += [ogg_opus(speak(text, voice)) for text, voice
                  in zip(SPOKEN, ["en-us", "en-gb", "en-us+f3"], strict=True)]

    with tempfile.TemporaryDirectory(prefix="homelabpi-bench-") as tmp:
        settings = Settings(data_dir=Path(tmp))
        rt = Runtime(settings)
        engine = load_engine(settings)
        assert rt.engine is engine, "the runtime should use the process's engine"
        decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
        headers = auth_header()
        pcms = [decode(body, "clip", settings.max_audio_seconds).data for body in clips]

        def function(event: bytes) -> dict:
            status, doc = invoke("transcribe", event, headers, rt)
            if status != 200 or doc["results"][0].get("outcome") != "transcribed":
                raise SystemExit(f"transcribe failed ({status}): {json.dumps(doc)}")
            return doc

        function(upload(rt, clips[0]))  # warm-up: imports, first decode
        direct(decoder, pcms[0])
        a_cpu = b_cpu = dec_cpu = a_wall = b_wall = 0.0
        for _ in range(repeats):
            for body, pcm in zip(clips, pcms, strict=True):
                event = upload(rt, body)
                c, w, _ = cpu(direct, decoder, pcm)
                a_cpu, a_wall = a_cpu + c, a_wall + w
                c, w, _ = cpu(function, event)
                b_cpu, b_wall = b_cpu + c, b_wall + w
                dec_cpu += cpu(decode, body, "clip", settings.max_audio_seconds)[0]
        hyps = [" ".join(w.text for w in engine.transcribe(decode(path, path.name, 3600)))
                for path, _ in wavs]

    audio = repeats * sum(seconds_of(p) for p in pcms)
    overhead = (b_cpu - a_cpu) / a_cpu
    n = len(clips)
    table(f"transcription: {n} clips ({audio / repeats:.1f} s of audio) x {repeats} passes, "
          f"{engine.name}", [
              ("(a) Decoder directly: audio s per CPU s", f"{audio / a_cpu:.2f}", ""),
              ("(b) transcribe function: audio s per CPU s", f"{audio / b_cpu:.2f}", ""),
              ("(a) / (b) CPU seconds", f"{a_cpu:.2f} / {b_cpu:.2f}", ""),
              ("(a) / (b) wall seconds", f"{a_wall:.2f} / {b_wall:.2f}", ""),
              ("overhead (b - a) / a, CPU", f"{overhead:+.1%}", f"< {TARGET_OVERHEAD:.0%}"),
              ("  of which PyAV decode of the Ogg Opus", f"{dec_cpu / a_cpu:+.1%}", ""),
              ("WER on LibriVox (5 utterances, wav)",
               f"{wer([(ref, hyp) for (_, ref), hyp in zip(wavs, hyps, strict=True)]):.1%}",
               "(context)"),
          ])
    print(f"\n{'meets' if overhead < TARGET_OVERHEAD else 'MISSES'} the overhead target")


if __name__ == "__main__":
    main()
