"""Audio in any format ffmpeg reads → 16 kHz mono 16-bit PCM, the input every speech engine takes.

PyAV decodes in-process (no subprocess per clip). Every rejection names the input and says why,
so one bad file in a batch is reported and skipped rather than failing the others.
"""

from __future__ import annotations

import io
import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av

from homelabpi.errors import BadInput, TooLarge

log = logging.getLogger(__name__)
SAMPLE_RATE = 16000
BYTES_PER_SECOND = SAMPLE_RATE * 2

SUBTITLE_EXTENSIONS = {".vtt", ".srt"}


@dataclass(frozen=True)
class Pcm:
    """16 kHz mono s16le samples."""

    data: bytes

    @property
    def seconds(self) -> float:
        return len(self.data) / BYTES_PER_SECOND


def decode(source: bytes | str | Path | BinaryIO, name: str, max_seconds: float) -> Pcm:
    """Decode `source` (bytes, path or file) to 16 kHz mono PCM; `name` is used in errors."""
    return Pcm(b"".join(decode_chunks(source, name, max_seconds)))


def decode_chunks(source: bytes | str | Path | BinaryIO, name: str,
                  max_seconds: float) -> Iterator[bytes]:
    """Decode as a stream of PCM chunks, so an hour-long recording never sits in memory whole.

    Errors surface while iterating: a file corrupt half-way fails half-way.
    """
    if isinstance(source, bytes | bytearray):
        if not source:
            raise BadInput(f"{name}: the file is empty (0 bytes); nothing to transcribe")
        source = io.BytesIO(source)
    elif isinstance(source, str | Path) and Path(source).stat().st_size == 0:
        raise BadInput(f"{name}: the file is empty (0 bytes); nothing to transcribe")
    limit = int(max_seconds * BYTES_PER_SECOND)
    total = 0
    try:
        opened = str(source) if isinstance(source, Path) else source
        with av.open(opened, mode="r") as container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                raise BadInput(f"{name}: no audio stream found; expected a recording "
                               "(ogg, opus, wav, mp3, m4a, flac, webm, …)")
            _check_declared_length(container, stream, name, max_seconds)
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            frames = itertools.chain(container.decode(stream), [None])  # None flushes
            for frame in frames:
                for chunk in resampler.resample(frame):
                    data = bytes(chunk.planes[0])[: chunk.samples * 2]
                    total += len(data)
                    if total > limit:
                        raise TooLarge(_too_long(name, max_seconds))
                    yield data
    except (av.error.FFmpegError, ValueError, IndexError) as exc:
        raise BadInput(f"{name}: could not decode audio ({_reason(exc)}); the file is corrupt "
                       "or not a format ffmpeg reads") from exc
    if total == 0:
        raise BadInput(f"{name}: decoded to no audio samples; the file holds no sound")


def probe(path: Path, max_seconds: float) -> float:
    """Cheap check before uploading: is there an audio stream, and how long is it (seconds)?

    Decodes the first packets only, so a whole batch can be validated up front; a file corrupt
    past its start is still caught by the transcribe function and reported then.
    """
    name = path.name
    if not path.is_file():
        raise BadInput(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise BadInput(f"{name}: the file is empty (0 bytes); nothing to transcribe")
    try:
        with av.open(str(path), mode="r") as container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                raise BadInput(f"{name}: no audio stream found; expected a recording "
                               "(ogg, opus, wav, mp3, m4a, flac, webm, …)")
            seconds = _check_declared_length(container, stream, name, max_seconds)
            decoded = 0
            for frame in container.decode(stream):
                decoded += frame.samples
                if decoded >= 4096:
                    break
            if decoded == 0:
                raise BadInput(f"{name}: decoded to no audio samples; the file holds no sound")
            return seconds if seconds is not None else 0.0
    except av.error.FFmpegError as exc:
        raise BadInput(f"{name}: could not decode audio ({_reason(exc)}); the file is corrupt "
                       "or not a format ffmpeg reads") from exc


def _check_declared_length(container, stream, name: str, max_seconds: float) -> float | None:
    seconds = None
    if stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        seconds = container.duration / av.time_base
    if seconds is not None and seconds > max_seconds:
        raise TooLarge(_too_long(name, max_seconds, seconds))
    return seconds


def _too_long(name: str, max_seconds: float, seconds: float | None = None) -> str:
    have = f" ({seconds:.0f} s)" if seconds else ""
    return (f"{name}: recording is longer than the {max_seconds:.0f} s limit{have}; split it or "
            "raise HOMELABPI_MAX_AUDIO_SECONDS")


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
