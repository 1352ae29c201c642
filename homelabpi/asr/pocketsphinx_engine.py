"""The bundled fallback: pocketsphinx 5 with the en-us model from its own wheel."""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Iterable, Iterator

from pocketsphinx import Decoder, Segmenter, get_model_path

from homelabpi.asr import Word
from homelabpi.audio import BYTES_PER_SECOND, SAMPLE_RATE, Pcm

FRAME_RATE = 100  # pocketsphinx frames per second (its default -frate)
# Clips up to this long decode as one utterance (best accuracy); longer recordings are split at
# pauses by pocketsphinx's VAD as they stream in, so memory and search stay bounded.
SINGLE_UTTERANCE_SECONDS = 60.0
_FILLER = re.compile(r"^(<s>|</s>|<sil>|\[.*\]|\+\+.*\+\+)$")


class PocketsphinxEngine:
    name = "pocketsphinx en-us (bundled)"

    def __init__(self) -> None:
        self.model_path = get_model_path()
        self._decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
        self._lock = threading.Lock()

    def transcribe(self, pcm: Pcm) -> list[Word]:
        return self.transcribe_stream([pcm.data])[0]

    def transcribe_stream(self, chunks: Iterable[bytes]) -> tuple[list[Word], float]:
        with self._lock:
            it = iter(chunks)
            head = bytearray()
            for chunk in it:
                head += chunk
                if len(head) > SINGLE_UTTERANCE_SECONDS * BYTES_PER_SECOND:
                    break
            else:
                return self._decode(bytes(head), 0.0), len(head) / BYTES_PER_SECOND
            # pocketsphinx's Segmenter drops a segment still open when the stream ends, so the
            # stream gets a second of silence to close it.
            silence = b"\0\0" * SAMPLE_RATE
            reader = _Reader(itertools.chain([bytes(head)], it, [silence]))
            del head
            words: list[Word] = []
            for seg in Segmenter(sample_rate=SAMPLE_RATE).segment(reader):
                words += self._decode(seg.pcm, seg.start_time)
            return words, (reader.consumed - len(silence)) / BYTES_PER_SECOND

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


class _Reader:
    """The `read(n)` file interface pocketsphinx's Segmenter pulls from, over PCM chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = bytearray()
        self.consumed = 0

    def read(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        self.consumed += len(out)
        return out
