"""Speech engines: audio → words with start/end times (seconds from clip start) and confidence.

Vosk when `HOMELABPI_VOSK_MODEL` names a model directory; otherwise pocketsphinx, whose en-us
model ships inside its wheel so a fresh install transcribes offline. One engine per process:
models load once and every clip reuses them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Protocol

from homelabpi.errors import Unavailable
from homelabpi.settings import Settings

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


class Engine(Protocol):
    name: str

    def transcribe(self, pcm: Pcm) -> list[Word]:
        """Words in time order; thread-safe (engines serialise internally)."""
        ...

    def transcribe_stream(self, chunks: Iterable[bytes]) -> tuple[list[Word], float]:
        """Words and the audio's length in seconds, consuming PCM chunks as they are decoded."""
        ...


_engines: dict[object, Engine] = {}
_lock = threading.Lock()


def load_engine(settings: Settings) -> Engine:
    """The configured engine, loaded once per process."""
    key = settings.vosk_model
    with _lock:
        if key not in _engines:
            if settings.vosk_model is not None:
                from homelabpi.asr.vosk_engine import VoskEngine

                if not settings.vosk_model.is_dir():
                    raise Unavailable(
                        f"HOMELABPI_VOSK_MODEL={settings.vosk_model} is not a directory; unpack a "
                        "Vosk model there (homelabpi models pull vosk) or unset it to use "
                        "the bundled pocketsphinx engine")
                _engines[key] = VoskEngine(settings.vosk_model)
            else:
                from homelabpi.asr.pocketsphinx_engine import PocketsphinxEngine

                _engines[key] = PocketsphinxEngine()
            log.info("speech engine: %s", _engines[key].name)
        return _engines[key]
