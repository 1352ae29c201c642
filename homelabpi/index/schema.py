"""The SQLite schema (peewee): one file per guild and month holds all of that month's rows.

Times are UTC epoch seconds (REAL) so windows and filters are arithmetic; outputs format them
with `transcripts.iso`. `PRAGMA user_version` is the schema version; `migrate` brings any shard
up to `SCHEMA_VERSION`, so later releases add steps to `MIGRATIONS` rather than rebuild.
"""

from __future__ import annotations

from collections.abc import Callable

from peewee import (
    BlobField,
    CharField,
    FloatField,
    ForeignKeyField,
    IntegerField,
    Model,
    SqliteDatabase,
    TextField,
)
from playhouse.sqlite_ext import JSONField


class BaseModel(Model):
    class Meta:
        database = None  # bound per shard with db.bind_ctx(MODELS)
        legacy_table_names = False


class Guild(BaseModel):
    id = CharField(primary_key=True)


class Channel(BaseModel):
    guild = ForeignKeyField(Guild, backref="channels")
    name = TextField()
    discord_id = TextField(default="")

    class Meta:
        indexes = ((("guild", "name"), True),)


class Speaker(BaseModel):
    guild = ForeignKeyField(Guild, backref="speakers")
    name = TextField()
    discord_id = TextField(default="")

    class Meta:
        indexes = ((("guild", "name", "discord_id"), True),)


class Session(BaseModel):
    id = CharField(primary_key=True)
    guild = ForeignKeyField(Guild, backref="sessions")
    channel = ForeignKeyField(Channel)
    started_at = FloatField()
    ended_at = FloatField()


class Clip(BaseModel):
    """One transcript; `key` + `etag` make indexing idempotent."""

    key = TextField(unique=True)
    etag = TextField()
    audio_key = TextField(default="")
    session = ForeignKeyField(Session, backref="clips")
    speaker = ForeignKeyField(Speaker)
    channel = ForeignKeyField(Channel)
    started_at = FloatField()
    duration = FloatField()
    status = TextField()  # "ok" or "failed"
    error = TextField(null=True)
    engine = TextField(default="")
    kind = TextField(default="audio")  # "audio" or "subtitles"
    indexed_at = FloatField()


class Segment(BaseModel):
    clip = ForeignKeyField(Clip, backref="segments", on_delete="CASCADE")
    session = ForeignKeyField(Session)
    speaker = ForeignKeyField(Speaker)
    channel = ForeignKeyField(Channel)
    start = FloatField(index=True)
    end = FloatField()
    text = TextField()
    words = JSONField()
    confidence = FloatField()


class Query(BaseModel):
    """The query log: every question asked, what was answered and what was cited."""

    id = CharField(primary_key=True)
    key = TextField(unique=True)
    etag = TextField()
    question = TextField()
    answer = TextField()
    confidence = FloatField()
    citations = JSONField()
    mode = TextField(default="")
    asker = TextField(default="")
    asked_at = FloatField(index=True)
    latency_ms = IntegerField(default=0)
    # v2: the Discord thread a question was asked in, and the question as it was understood
    # (follow-ups resolved against the thread's previous question; filters made explicit).
    thread = TextField(default="")
    resolved = JSONField(default=dict)


class Embedding(BaseModel):
    """v2: one sentence embedding per segment, computed by the index function at ingest.

    `vector` is float16 (exact rescoring); `code` its packed sign bits (a Hamming pre-filter
    the answer function keeps in memory). `model` names the embedder so a changed model never
    compares vectors from two spaces.
    """

    segment = ForeignKeyField(Segment, primary_key=True, on_delete="CASCADE")
    model = TextField()
    vector = BlobField()
    code = BlobField()


MODELS = [Guild, Channel, Speaker, Session, Clip, Segment, Query, Embedding]


def _v1(db: SqliteDatabase) -> None:
    db.create_tables(MODELS)
    # Full-text index over segment text, kept in step with `segment` by triggers.
    db.execute_sql("CREATE VIRTUAL TABLE segment_fts USING fts5(text, content='segment', "
                   "content_rowid='id', tokenize='porter unicode61')")
    db.execute_sql("CREATE TRIGGER segment_ai AFTER INSERT ON segment BEGIN "
                   "INSERT INTO segment_fts(rowid, text) VALUES (new.id, new.text); END")
    db.execute_sql("CREATE TRIGGER segment_ad AFTER DELETE ON segment BEGIN "
                   "INSERT INTO segment_fts(segment_fts, rowid, text) "
                   "VALUES ('delete', old.id, old.text); END")
    db.execute_sql("CREATE INDEX segment_session_start ON segment(session_id, start)")


def _columns(db: SqliteDatabase, table: str) -> set[str]:
    return {row[1] for row in db.execute_sql(f"PRAGMA table_info({table})")}


def _v2(db: SqliteDatabase) -> None:
    """Embeddings beside FTS5, and the thread a question came from (follow-ups).

    Written to be idempotent: a shard created by this release already got both from `_v1`'s
    create_tables, an older shard gets them here. Segments indexed before v2 have no embedding
    until `homelabpi reindex`; until then they are found by BM25 alone.
    """
    db.create_tables([Embedding], safe=True)
    have = _columns(db, "query")
    if "thread" not in have:
        db.execute_sql("ALTER TABLE query ADD COLUMN thread TEXT NOT NULL DEFAULT ''")
    if "resolved" not in have:
        db.execute_sql("ALTER TABLE query ADD COLUMN resolved JSON NOT NULL DEFAULT '{}'")
    db.execute_sql("CREATE INDEX IF NOT EXISTS query_thread_asked ON query(thread, asked_at)")


MIGRATIONS: list[Callable[[SqliteDatabase], None]] = [_v1, _v2]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: SqliteDatabase) -> int:
    """Apply the steps this shard has not seen; returns the version it ends at."""
    version = db.execute_sql("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise RuntimeError(f"{db.database}: schema version {version} is newer than this "
                           f"HomeLabPi ({SCHEMA_VERSION}); upgrade HomeLabPi")
    if version == SCHEMA_VERSION:
        return version  # no write at all: opening a full part must not change its bytes
    with db.bind_ctx(MODELS), db.atomic():
        for step in MIGRATIONS[version:]:
            step(db)
        db.execute_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return SCHEMA_VERSION


