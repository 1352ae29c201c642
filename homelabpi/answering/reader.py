"""Extractive question answering (DistilBERT fine-tuned on SQuAD) over retrieved passages.

The reader picks the answer span inside a passage; the passage maps the span back to a segment
and its words, so the answer cites who said it and when. Long passages are read in overlapping
windows (tokenizer striding) so no answer is cut in half at a window edge. A low best-span
probability abstains instead of guessing.

Scores follow the transformers question-answering pipeline: per window, softmax over the context
tokens and [CLS]; a span's score is p(start) * p(end); [CLS]/[CLS] is the "no answer" score that
SQuAD 2.0 models learn (SQuAD 1.1 models leave it low, so the threshold does the abstaining).

Two backends, one interface. A model directory holding `model.onnx` (written by `export_onnx`,
which `homelabpi models pull reader` runs on the machine with internet) is run by ONNX Runtime:
no torch in the answer image, whose arm64 torch wheel on PyPI is the CUDA build. Without it the
directory is loaded with transformers + torch as before. The tokenizer is the same either way.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from homelabpi import torchenv
from homelabpi.errors import HomeLabPiError, NotFound
from homelabpi.settings import Settings
from homelabpi.store import ObjectStore

log = logging.getLogger(__name__)
MAX_LENGTH = 384  # tokens per window, question included (what SQuAD readers are trained on)
STRIDE = 128  # tokens shared by neighbouring windows
MAX_QUESTION_TOKENS = 64
MAX_ANSWER_TOKENS = 30
STORE_NAME = "reader"  # models/reader/ in the store
ONNX_FILE = "model.onnx"


@dataclass(frozen=True)
class Span:
    """The best answer in one context: char offsets into it, and its probability."""

    context: int
    start: int
    end: int
    score: float
    null_score: float = 0.0
    window: int = 0

    @property
    def answerable(self) -> bool:
        return self.score > self.null_score


class Reader:
    """A loaded extractive QA model and its (fast) tokenizer."""

    def __init__(self, model_dir: Path | str, threads: int = 2, *, max_length: int = MAX_LENGTH,
                 stride: int = STRIDE, max_answer_tokens: int = MAX_ANSWER_TOKENS,
                 backend: str | None = None) -> None:
        from transformers import AutoTokenizer

        self.model_dir = Path(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        if not getattr(self.tokenizer, "is_fast", False):
            raise ValueError(f"{model_dir}: the reader needs a fast tokenizer (tokenizer.json) "
                             "for character offsets")
        self.backend = backend or ("onnx" if (self.model_dir / ONNX_FILE).is_file() else "torch")
        self.max_length = max_length
        self.stride = stride
        self.max_answer_tokens = max_answer_tokens
        self._lock = threading.Lock()
        if self.backend == "onnx":
            self._session = _onnx_session(self.model_dir / ONNX_FILE, threads)
            self._accepts = {i.name for i in self._session.get_inputs()}
            return
        torchenv.init(threads)
        from transformers import AutoModelForQuestionAnswering

        self.model = AutoModelForQuestionAnswering.from_pretrained(
            str(model_dir), local_files_only=True).eval()
        # DistilBERT takes no token_type_ids; BERT-style readers do.
        params = inspect.signature(self.model.forward).parameters
        self._accepts = {k for k in ("input_ids", "attention_mask", "token_type_ids")
                         if k in params}

    def windows(self, question: str, contexts: list[str]):
        """Tokenised (question, context) windows with offsets; long contexts overflow, strided.

        The question is cut to `MAX_QUESTION_TOKENS` first: truncation only ever shortens the
        context, and a question longer than a window would leave no room for one.
        """
        q_ids = self.tokenizer(question, add_special_tokens=False)["input_ids"]
        if len(q_ids) > MAX_QUESTION_TOKENS:
            question = self.tokenizer.decode(q_ids[:MAX_QUESTION_TOKENS])
        room = self.max_length - min(len(q_ids), MAX_QUESTION_TOKENS) - 3
        return self.tokenizer(
            [question] * len(contexts), contexts, truncation="only_second",
            max_length=self.max_length, stride=min(self.stride, max(0, room - 1)),
            return_overflowing_tokens=True, return_offsets_mapping=True, padding="longest",
            return_tensors="np" if self.backend == "onnx" else "pt")

    def logits(self, enc) -> tuple[np.ndarray, np.ndarray]:
        if self.backend == "onnx":
            feed = {k: np.asarray(v, dtype=np.int64) for k, v in enc.items()
                    if k in self._accepts}
            with self._lock:
                start, end = self._session.run(["start_logits", "end_logits"], feed)
            return start.astype(np.float32), end.astype(np.float32)
        import torch

        inputs = {k: v for k, v in enc.items() if k in self._accepts}
        with self._lock, torch.inference_mode():
            out = self.model(**inputs)
        return out.start_logits.float().numpy(), out.end_logits.float().numpy()

    def read(self, question: str, contexts: list[str]) -> list[Span]:
        """The best span of each context (those with any), best first."""
        if not contexts:
            return []
        enc = self.windows(question, contexts)
        starts, ends = self.logits(enc)
        owners = enc["overflow_to_sample_mapping"].tolist()
        offsets = enc["offset_mapping"].tolist()
        best: dict[int, Span] = {}
        for w, ctx in enumerate(owners):
            span = self._best(w, ctx, starts[w], ends[w], enc.sequence_ids(w), offsets[w],
                              enc["attention_mask"][w].tolist())
            if span is not None and (ctx not in best or span.score > best[ctx].score):
                best[ctx] = span
        return sorted(best.values(), key=lambda s: -s.score)

    def _best(self, w: int, ctx: int, start: np.ndarray, end: np.ndarray,
              seq_ids: list[int | None], offsets: list, attention: list[int]) -> Span | None:
        in_ctx = np.array([s == 1 and a == 1 for s, a in zip(seq_ids, attention, strict=True)])
        if not in_ctx.any():
            return None
        allowed = in_ctx.copy()
        allowed[0] = True  # [CLS] takes part in the softmax: it is the "no answer" choice
        p_start = _softmax(np.where(allowed, start, -np.inf))
        p_end = _softmax(np.where(allowed, end, -np.inf))
        null = float(p_start[0] * p_end[0])
        p_start = np.where(in_ctx, p_start, 0.0)
        p_end = np.where(in_ctx, p_end, 0.0)
        scores = np.triu(np.outer(p_start, p_end))  # end >= start
        scores = np.tril(scores, self.max_answer_tokens - 1)  # and not too long
        i, j = np.unravel_index(int(np.argmax(scores)), scores.shape)
        if scores[i, j] <= 0:
            return None
        return Span(ctx, int(offsets[i][0]), int(offsets[j][1]), float(scores[i, j]), null, w)


def _onnx_session(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, threads)
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def export_onnx(model_dir: Path | str) -> Path:
    """Write `model.onnx` beside a transformers QA model (needs torch; run where it is pulled).

    Dynamic batch and sequence axes; inputs as the model's forward takes them; outputs named
    start_logits and end_logits, which is all `Reader` asks of the file.
    """
    import torch
    from transformers import AutoModelForQuestionAnswering

    model_dir = Path(model_dir)
    model = AutoModelForQuestionAnswering.from_pretrained(str(model_dir),
                                                          local_files_only=True).eval()
    params = inspect.signature(model.forward).parameters
    names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in params]
    # Two windows, the second padded: the trace then records the padding path of the mask.
    dummy = tuple(torch.tensor([[1] * 8, [1] * 5 + [0] * 3], dtype=torch.long) for _ in names)

    class _Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, *args):
            out = self.inner(**dict(zip(names, args, strict=True)))
            return out.start_logits, out.end_logits

    target = model_dir / ONNX_FILE
    tmp = target.with_suffix(".onnx.tmp")
    axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "start_logits", "end_logits"]}
    with torch.inference_mode():
        torch.onnx.export(_Logits().eval(), dummy, str(tmp), input_names=names,
                          output_names=["start_logits", "end_logits"], dynamic_axes=axes,
                          opset_version=17, dynamo=False)
    tmp.replace(target)
    log.info("exported %s (%d bytes)", target, target.stat().st_size)
    return target


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x - np.max(x)
    e = np.exp(x)
    return e / e.sum()


# -- loading: once per process ---------------------------------------------------------------------
_cache: dict[tuple[str, int], Reader] = {}
_missing_until: dict[str, float] = {}
_lock = threading.Lock()
RECHECK_SECONDS = 60.0  # how long "no reader in the store" is believed before asking again


def fetch_from_store(store: ObjectStore, cache_dir: Path) -> Path | None:
    """The store's `models/reader/` as a local directory, or None when none was pushed."""
    from homelabpi.models import fetch_model

    try:
        return fetch_model(store, STORE_NAME, cache_dir)
    except NotFound:
        return None


def model_dir(settings: Settings, store: ObjectStore | None) -> Path | None:
    """HOMELABPI_READER_MODEL, else the store's models/reader/, else None (passage mode)."""
    if settings.reader_model is not None:
        return settings.reader_model
    if store is None:
        return None
    key = f"store:{id(store)}"
    if _missing_until.get(key, 0.0) > time.monotonic():
        return None
    try:
        path = fetch_from_store(store, settings.data_dir / "models")
    except HomeLabPiError as exc:
        log.warning("cannot fetch the reader from the store (%s); answering without it", exc)
        path = None
    if path is None:
        _missing_until[key] = time.monotonic() + RECHECK_SECONDS
    return path


def get(settings: Settings, store: ObjectStore | None = None) -> Reader | None:
    """The process's reader, or None: no model configured, or it failed to load (logged)."""
    path = model_dir(settings, store)
    if path is None:
        return None
    key = (str(Path(path).resolve()), settings.torch_threads)
    with _lock:
        if key not in _cache:
            if _missing_until.get(key[0], 0.0) > time.monotonic():
                return None
            try:
                _cache[key] = Reader(path, settings.torch_threads)
                log.info("loaded reader %s", path)
            except (OSError, ValueError) as exc:
                _missing_until[key[0]] = time.monotonic() + RECHECK_SECONDS
                log.warning("cannot load the reader at %s (%s); answering without it", path, exc)
                return None
        return _cache[key]
