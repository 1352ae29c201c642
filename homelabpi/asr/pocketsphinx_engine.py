"""The bundled fallback: pocketsphinx 5 with the en-us model from its own wheel."""

from __future__ import annotations

import io
import re
import threading

from pocketsphinx import Decoder, Segmenter, get_model_path

from homelabpi.asr import Word
from homelabpi.audio import SAMPLE_RATE, Pcm

FRAME_RATE = 100  # pocketsphinx frames per second (its default -frate)
# Clips up to this long decode as one utterance (best accuracy); longer recordings are split at
# pauses by pocketsphinx's VAD so memory and search stay bounded.
SINGLE_UTTERANCE_SECONDS = 60.0
_FILLER = re.compile(r"^(<s>|</s>|<sil>|\[.*\]|\+\+.*\+\+)$")


class PocketsphinxEngine:
    name = "pocketsphinx en-us (bundled)"

    def __init__(self) -> None:
        self.model_path = get_model_path()
        self._decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
        self._lock = threading.Lock()

    def transcribe(self, pcm: Pcm) -> list[Word]:
        with self._lock:
            if pcm.seconds <= SINGLE_UTTERANCE_SECONDS:
                return self._decode(pcm.data, 0.0)
            words: list[Word] = []
            # pocketsphinx's Segmenter drops a segment still open when the stream ends, so a
            # recording that ends mid-sentence gets a second of silence to close it.
            padded = pcm.data + b"\0\0" * SAMPLE_RATE
            for seg in Segmenter(sample_rate=SAMPLE_RATE).segment(io.BytesIO(padded)):
                words += self._decode(seg.pcm, seg.start_time)
            return words

    def _decode(self, data: bytes, offset: float) -> list[Word]:
        d = self._decoder
        d.start_utt()
        d.process_raw(data, full_utt=True)
        d.end_utt()
        if d.hyp() is None:
            return []
        words = []
        for seg in d.seg():
            if _FILLER.match(seg.word):
                continue
            words.append(Word(
                text=re.sub(r"\(\d+\)$", "", seg.word),  # alternate pronunciations: "was(2)"
                start=offset + seg.start_frame / FRAME_RATE,
                end=offset + (seg.end_frame + 1) / FRAME_RATE,
                conf=max(0.0, min(1.0, float(seg.prob))),
            ))
        return words
