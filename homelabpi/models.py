"""Models without run-time downloads: pull once with internet, push to the store, fetch.

    homelabpi models pull vosk|reader [--dest DIR]     on a machine with internet
    homelabpi models push PATH --name NAME             upload a model dir to models/<name>/
    fetch_model(store, name, cache_dir) -> Path        in a function: once per container

A pushed model is its files under `models/<name>/` plus `models/<name>/manifest.json` (written
last, so a reader never sees a manifest naming a file that is not there yet). `fetch_model`
keys its cache on the manifest's eTag: unchanged model, no download; changed model, a fresh copy
verified by SHA-256 and swapped in atomically.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import click

from homelabpi.durable import file_digest
from homelabpi.errors import BadInput, NotFound, Unavailable
from homelabpi.keys import validate_id
from homelabpi.store import ObjectStore

log = logging.getLogger(__name__)

VOSK_NAME = "vosk-model-small-en-us-0.15"
VOSK_URL = f"https://alphacephei.com/vosk/models/{VOSK_NAME}.zip"
# CTranslate2 conversions of OpenAI's Whisper, as faster-whisper publishes them.
WHISPER_REPO = "Systran/faster-whisper-{size}"
WHISPER_SIZES = ["tiny.en", "base.en", "small.en", "medium.en", "tiny", "base", "small", "medium"]
WHISPER_FILES = ["config.json", "model.bin", "tokenizer.json", "vocabulary.*",
                 "preprocessor_config.json"]
READER_REPO = "distilbert-base-cased-distilled-squad"
# What an extractive reader needs; skips the TF/Flax/ONNX duplicates of the weights.
READER_FILES = ["config.json", "*.safetensors", "tokenizer.json", "tokenizer_config.json",
                "vocab.txt", "special_tokens_map.json"]
MANIFEST = "manifest.json"
CHUNK = 1 << 20

_memo: dict[tuple[int, str, str], Path] = {}
_memo_lock = threading.Lock()


# -- pull (needs internet) -------------------------------------------------------------------------
def _download(url: str, dest: Path) -> None:
    """Stream `url` to `dest` (the one network boundary for Vosk; tests replace it)."""
    import requests

    with requests.get(url, stream=True, timeout=60) as resp:
        resp.raise_for_status()
        with open(dest, "wb") as out:
            for chunk in resp.iter_content(CHUNK):
                out.write(chunk)


def _snapshot_download(repo_id: str, local_dir: Path, allow_patterns: list[str]) -> None:
    """Hugging Face download (the network boundary for Whisper and the reader; tests replace
    it)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise Unavailable(f"pulling {repo_id} needs huggingface_hub: "
                          "pip install huggingface_hub") from exc
    snapshot_download(repo_id=repo_id, local_dir=str(local_dir), allow_patterns=allow_patterns)


def _safe_extract(zf: zipfile.ZipFile, dest: Path) -> None:
    root = dest.resolve()
    for member in zf.infolist():
        target = (dest / member.filename).resolve()
        if target != root and root not in target.parents:
            raise BadInput(f"zip member {member.filename!r} would land outside {dest}")
    zf.extractall(dest)


def pull(kind: str, dest: Path | str, size: str = "base.en") -> Path:
    """Download a model into `dest` and return its directory (ready for `push`).

    `size` picks the Whisper model; tiny.en ships with HomeLabPi already.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if kind == "whisper":
        if size not in WHISPER_SIZES:
            raise BadInput(f"unknown Whisper size {size!r}; use one of {', '.join(WHISPER_SIZES)}")
        repo = WHISPER_REPO.format(size=size)
        target = dest / f"faster-whisper-{size}"
        _snapshot_download(repo, target, WHISPER_FILES)
        if not (target / "model.bin").is_file():
            raise Unavailable(f"the {repo} download has no model.bin")
        shutil.rmtree(target / ".cache", ignore_errors=True)
        return target
    if kind == "vosk":
        target = dest / VOSK_NAME
        if (target / "am").is_dir():
            log.info("%s already present", target)
            return target
        with tempfile.TemporaryDirectory(dir=dest) as tmp:
            archive = Path(tmp) / f"{VOSK_NAME}.zip"
            _download(VOSK_URL, archive)
            try:
                with zipfile.ZipFile(archive) as zf:
                    _safe_extract(zf, Path(tmp) / "x")
            except zipfile.BadZipFile as exc:
                raise Unavailable(f"{VOSK_URL} did not return a zip archive: {exc}") from exc
            extracted = Path(tmp) / "x" / VOSK_NAME
            if not extracted.is_dir():
                raise Unavailable(f"{VOSK_URL} has no top-level {VOSK_NAME}/ directory")
            os.replace(extracted, target)
        return target
    if kind == "reader":
        target = dest / READER_REPO
        _snapshot_download(READER_REPO, target, READER_FILES)
        if not (target / "config.json").is_file():
            raise Unavailable(f"the {READER_REPO} download has no config.json")
        shutil.rmtree(target / ".cache", ignore_errors=True)  # huggingface_hub bookkeeping
        # The answer image runs the reader on ONNX Runtime (no torch on arm64 there): export
        # here, where torch is, so `models push` carries model.onnx with the tokenizer.
        from homelabpi.answering.reader import export_onnx

        export_onnx(target)
        return target
    raise BadInput(f"unknown model {kind!r}; use 'whisper', 'vosk' or 'reader'")


# -- push / fetch ----------------------------------------------------------------------------------
def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def push(store: ObjectStore, path: Path | str, name: str) -> dict:
    """Upload the directory `path` as `models/<name>/…`; returns the manifest written."""
    path = Path(path)
    name = validate_id(name, "model name")
    if not path.is_dir():
        raise BadInput(f"{path} is not a directory; push a model directory")
    files = []
    for f in _files(path):
        rel = f.relative_to(path).as_posix()
        if rel == MANIFEST:
            continue
        with open(f, "rb") as fh:
            info = store.put(f"models/{name}/{rel}", fh)
        files.append({"path": rel, "size": info.size, "sha256": file_digest(f, "sha256"),
                      "etag": info.etag})
    if not files:
        raise BadInput(f"{path} has no files to push")
    manifest = {"name": name, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "files": files}
    store.put(f"models/{name}/{MANIFEST}", json.dumps(manifest, indent=1).encode(),
              content_type="application/json")
    log.info("pushed model %s: %d files, %d bytes", name, len(files),
             sum(f["size"] for f in files))
    return manifest


def fetch_model(store: ObjectStore, name: str, cache_dir: Path | str) -> Path:
    """The local directory of model `name`, downloading it only when its manifest changed.

    Within one process the answer is remembered, so handlers may call this on every request.
    """
    name = validate_id(name, "model name")
    cache_dir = Path(cache_dir)
    memo_key = (id(store), name, str(cache_dir))
    with _memo_lock:
        if memo_key in _memo and _memo[memo_key].is_dir():
            return _memo[memo_key]
        path = _fetch(store, name, cache_dir)
        _memo[memo_key] = path
        return path


def forget() -> None:
    """Drop the in-process memo (tests; a long-lived process that wants to re-check)."""
    with _memo_lock:
        _memo.clear()


def _fetch(store: ObjectStore, name: str, cache_dir: Path) -> Path:
    target = cache_dir / name
    stamp = cache_dir / f".{name}.etag"
    manifest_key = f"models/{name}/{MANIFEST}"
    try:
        current = store.stat(manifest_key)
    except NotFound:
        raise NotFound(f"no model {name!r} in the store; run 'homelabpi models push DIR "
                       f"--name {name}' first") from None
    if target.is_dir() and stamp.is_file() and stamp.read_text().strip() == current.etag:
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=cache_dir))
    try:
        manifest_path = staging / MANIFEST
        info = store.get_file(manifest_key, manifest_path)
        manifest = json.loads(manifest_path.read_text())
        for entry in manifest["files"]:
            rel = Path(entry["path"])
            if rel.is_absolute() or ".." in rel.parts:
                raise BadInput(f"model {name}: manifest names unsafe path {entry['path']!r}")
            local = staging / rel
            local.parent.mkdir(parents=True, exist_ok=True)
            old = target / rel
            if old.is_file() and old.stat().st_size == entry["size"] and \
                    file_digest(old, "sha256") == entry["sha256"]:
                shutil.copy2(old, local)  # unchanged file from the previous version
            else:
                store.get_file(f"models/{name}/{entry['path']}", local)
            intact = (local.stat().st_size == entry["size"]
                      and file_digest(local, "sha256") == entry["sha256"])
            if not intact:
                raise Unavailable(f"model {name}: {entry['path']} does not match its manifest "
                                  "(changed while downloading?); try again")
        manifest_path.unlink()
        retired = None
        if target.exists():
            retired = cache_dir / f".{name}.old-{os.getpid()}-{time.time_ns()}"
            os.replace(target, retired)
        os.replace(staging, target)
        stamp.write_text(info.etag)
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("fetched model %s (%d files) into %s", name, len(manifest["files"]), target)
    return target


# -- CLI -------------------------------------------------------------------------------------------
@click.group("models")
def models_group() -> None:
    """Get speech and reader models onto a machine or into the store (no run-time downloads)."""


@models_group.command("pull")
@click.argument("kind", type=click.Choice(["whisper", "vosk", "reader"]))
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path), default=Path("models"),
              show_default=True, help="Directory to download into.")
@click.option("--size", type=click.Choice(WHISPER_SIZES), default="base.en", show_default=True,
              help="Which Whisper model (whisper only).")
def pull_cmd(kind: str, dest: Path, size: str) -> None:
    """Download a Whisper model, the Vosk small en-us model or the DistilBERT SQuAD reader
    (needs internet)."""
    path = pull(kind, dest, size)
    click.echo(f"{kind} model in {path}")
    click.echo(f"next: homelabpi models push {path} --name {kind}")


@models_group.command("push")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", required=True, help="Store it as models/<name>/ (e.g. vosk, reader).")
def push_cmd(path: Path, name: str) -> None:
    """Upload a model directory to the configured store (MinIO on the cluster)."""
    from homelabpi.settings import Settings
    from homelabpi.store import open_store

    manifest = push(open_store(Settings.from_env()), path, name)
    size = sum(f["size"] for f in manifest["files"])
    click.echo(f"pushed {len(manifest['files'])} files ({size / 1e6:.1f} MB) to models/{name}/")


