"""Whisper through faster-whisper (CTranslate2, int8 on the CPU): the default engine.

Whisper writes punctuation and capitals, which is what lets a transcript be cut into sentences.
Its bundled Silero VAD skips silence, so a quiet channel costs next to nothing. A recording goes
to the model one bounded window at a time (`windows`), so memory does not grow with its length;
the text that ended one window is the prompt of the next, so a sentence cut by a window boundary
keeps its style.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from homelabpi.asr import Word
from homelabpi.asr.windows import windows
from homelabpi.audio import Pcm

log = logging.getLogger(__name__)

WINDOW_SECONDS = 120.0
PROMPT_CHARS = 200  # how much of the previous window's text primes the next one


class WhisperEngine:
    def __init__(self, model_dir: Path, *, threads: int = 2, beam_size: int = 1,
                 label: str = "") -> None:
        from faster_whisper import WhisperModel

        self.model_dir = Path(model_dir)
        self._model = WhisperModel(str(model_dir), device="cpu", compute_type="int8",
                                   cpu_threads=threads, num_workers=1)
        # English-only models (tiny.en, base.en, ...) must be told; multilingual ones detect.
        self.language = None if self._model.model.is_multilingual else "en"
        self.beam_size = beam_size
        self.name = (f"whisper {label or self.model_dir.name} "
                     f"(faster-whisper int8, beam {beam_size})")
        self._lock = threading.Lock()

    def transcribe(self, pcm: Pcm) -> list[Word]:
        return self.transcribe_stream([pcm.data])[0]

    def transcribe_stream(self, chunks: Iterable[bytes],
                          progress: Callable[[float], None] | None = None
                          ) -> tuple[list[Word], float]:
        words: list[Word] = []
        seconds = 0.0
        prompt: str | None = None
        with self._lock:  # one CTranslate2 model, one decode at a time
            for window in windows(chunks, WINDOW_SECONDS):
                got = self._window(window.samples, window.offset, window.seconds, prompt)
                words += got
                seconds = window.offset + window.seconds
                if got:
                    prompt = " ".join(w.text for w in got)[-PROMPT_CHARS:]
                if progress is not None:
                    progress(seconds)
        return words, seconds

    def _window(self, samples, offset: float, length: float, prompt: str | None) -> list[Word]:
        segments, _info = self._model.transcribe(
            samples, language=self.language, beam_size=self.beam_size, word_timestamps=True,
            vad_filter=True, initial_prompt=prompt, condition_on_previous_text=True)
        out: list[Word] = []
        last = offset
        for seg in segments:  # a generator: decoding happens as it is consumed
            for w in seg.words or ():
                text = w.word.strip()
                if not text:
                    continue
                # Word times are clamped into the window and kept in order: DTW alignment can
                # put a word a few ms before its predecessor or past the window's end.
                start = min(max(offset + float(w.start), last), offset + length)
                end = min(max(offset + float(w.end), start), offset + length)
                out.append(Word(text=text, start=start, end=end,
                                conf=min(1.0, max(0.0, float(w.probability)))))
                last = start
        return out
