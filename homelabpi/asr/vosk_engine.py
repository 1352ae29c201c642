"""Vosk (Kaldi) with a model directory, e.g. vosk-model-small-en-us-0.15."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from pathlib import Path

from homelabpi.asr import Progress, Word
from homelabpi.audio import BYTES_PER_SECOND, SAMPLE_RATE, Pcm

CHUNK_BYTES = 8000  # 0.25 s: Vosk finalises utterances at pauses as it goes


class VoskEngine:
    def __init__(self, model_dir: Path) -> None:
        import vosk

        vosk.SetLogLevel(-1)
        self.name = f"vosk ({Path(model_dir).name})"
        self._model = vosk.Model(str(model_dir))
        self._lock = threading.Lock()

    def transcribe(self, pcm: Pcm) -> list[Word]:
        data = pcm.data
        return self.transcribe_stream(data[i:i + CHUNK_BYTES]
                                      for i in range(0, len(data), CHUNK_BYTES))[0]

    def transcribe_stream(self, chunks: Iterable[bytes], progress: Progress | None = None
                          ) -> tuple[list[Word], float]:
        import vosk

        rec = vosk.KaldiRecognizer(self._model, SAMPLE_RATE)
        rec.SetWords(True)
        words: list[Word] = []
        total = 0
        with self._lock:
            for chunk in chunks:
                total += len(chunk)
                if rec.AcceptWaveform(chunk):  # an utterance ended at a pause
                    words += _words(rec.Result())
                    if progress is not None:
                        progress(total / BYTES_PER_SECOND)
            words += _words(rec.FinalResult())
        return words, total / BYTES_PER_SECOND


def _words(result_json: str) -> list[Word]:
    return [Word(text=w["word"], start=float(w["start"]), end=float(w["end"]),
                 conf=min(1.0, max(0.0, float(w.get("conf", 1.0)))))
            for w in json.loads(result_json).get("result", [])]
