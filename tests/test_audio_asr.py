"""Audio decoding (PyAV), on real speech in every common format."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from homelabpi.audio import SAMPLE_RATE, decode, probe
from homelabpi.errors import BadInput, TooLarge

FORMATS = {"ogg": ["-c:a", "libopus"], "mp3": [], "flac": [], "m4a": ["-c:a", "aac"],
           "webm": ["-c:a", "libopus"]}


def convert(src: Path, dest: Path, args: list[str], rate: int = 48000, channels: int = 2) -> Path:
    if shutil.which("ffmpeg") is None:
        pytest.skip("format conversion needs ffmpeg (apt-get install ffmpeg)")
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(src), "-ar", str(rate),
                    "-ac", str(channels), *args, str(dest)], check=True)
    return dest


@pytest.fixture(scope="module")
def utterance(librivox):
    return next(iter(librivox))


@pytest.mark.parametrize("ext", sorted(FORMATS))
def test_common_formats_decode_to_16k_mono(utterance, tmp_path, ext):
    src = convert(utterance, tmp_path / f"clip.{ext}", FORMATS[ext])
    pcm = decode(src, src.name, 600)
    original = decode(utterance, utterance.name, 600)
    # Resampled 48 kHz stereo → 16 kHz mono: same length within codec padding.
    assert abs(pcm.seconds - original.seconds) < 0.1
    assert len(pcm.data) % 2 == 0 and SAMPLE_RATE == 16000
    assert probe(src, 600) == pytest.approx(original.seconds, abs=0.1)


def test_bytes_and_paths_decode_the_same(utterance):
    assert decode(utterance.read_bytes(), "x.wav", 600) == decode(utterance, "x.wav", 600)


def test_empty_file_is_named(tmp_path):
    empty = tmp_path / "empty.ogg"
    empty.write_bytes(b"")
    for call in (lambda: decode(empty, "empty.ogg", 60), lambda: probe(empty, 60),
                 lambda: decode(b"", "empty.ogg", 60)):
        with pytest.raises(BadInput, match="empty.ogg: the file is empty"):
            call()


def test_corrupt_audio_is_named(tmp_path):
    bad = tmp_path / "corrupt.ogg"
    bad.write_bytes(b"OggS" + bytes(range(256)) * 16)  # an Ogg signature, then nonsense
    with pytest.raises(BadInput, match="corrupt.ogg: could not decode audio"):
        decode(bad, "corrupt.ogg", 60)
    with pytest.raises(BadInput, match="corrupt.ogg"):
        probe(bad, 60)


def test_truncated_audio_still_decodes_what_is_there(utterance, tmp_path):
    ogg = convert(utterance, tmp_path / "full.ogg", FORMATS["ogg"])
    cut = tmp_path / "cut.ogg"
    cut.write_bytes(ogg.read_bytes()[: ogg.stat().st_size // 2])
    pcm = decode(cut, "cut.ogg", 60)
    assert 0.2 < pcm.seconds < decode(ogg, "full.ogg", 60).seconds


def test_no_audio_stream_is_named(tmp_path):
    if shutil.which("ffmpeg") is None:
        pytest.skip("needs ffmpeg")
    png = tmp_path / "picture.png"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "color=c=red:s=8x8",
                    "-frames:v", "1", str(png)], check=True)
    with pytest.raises(BadInput, match="picture.png: no audio stream"):
        decode(png, "picture.png", 60)


def test_longer_than_limit_is_refused(utterance):
    with pytest.raises(TooLarge, match="HOMELABPI_MAX_AUDIO_SECONDS"):
        decode(utterance, utterance.name, 1.0)
    with pytest.raises(TooLarge):
        probe(utterance, 1.0)


