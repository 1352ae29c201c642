"""The `homelabpi` command. Each command parses, calls the library, and prints."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import click

from homelabpi import __version__
from homelabpi.errors import HomeLabPiError
from homelabpi.logs import configure as configure_logs
from homelabpi.settings import Settings
from homelabpi.transcripts import parse_time


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


def _client():
    from homelabpi.client import Client

    return Client(_settings())


def _print_json(doc: object) -> None:
    click.echo(json.dumps(doc, indent=2, ensure_ascii=False))


class Group(click.Group):
    """Turns library errors into one line on stderr and a non-zero exit, not a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except HomeLabPiError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2 if exc.status < 500 else 3)


@click.group(cls=Group)
@click.version_option(__version__, prog_name="homelabpi")
@click.option("-v", "--verbose", is_flag=True, help="Log what happens (INFO) to stderr.")
def main(verbose: bool) -> None:
    """HomeLabPi: record a Discord voice channel, transcribe it offline, ask about it.

    Settings come from HOMELABPI_* environment variables (see the README or `doctor`).
    """
    configure_logs(os.environ.get("HOMELABPI_LOG_LEVEL", "INFO" if verbose else "WARNING"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


@main.command()
def serve() -> None:
    """Run the local gateway: /function/<name>, /async-function/<name>, /healthz."""
    from homelabpi.server import Server

    logging.getLogger().setLevel(logging.INFO)
    Server(_settings()).run()


@main.command()
def up() -> None:
    """The embedded default: gateway and functions (and the bot when DISCORD_TOKEN is set)."""
    from homelabpi.server import Server

    logging.getLogger().setLevel(logging.INFO)
    settings = _settings()
    server = Server(settings)
    if os.environ.get("DISCORD_TOKEN"):
        try:
            from bot.app import start_in_background
        except ImportError as exc:
            raise click.ClickException(f"DISCORD_TOKEN is set but the bot cannot start: {exc}; "
                                       "pip install 'homelabpi[bot]'") from exc
        start_in_background(settings, server.url)
    else:
        logging.getLogger(__name__).info("DISCORD_TOKEN unset: running without the Discord bot")
    server.run()


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--guild", required=True, help="Guild (server) id the recording belongs to.")
@click.option("--channel", required=True, help="Voice channel name.")
@click.option("--speaker", required=True, help="Who is speaking (subtitle voice tags override).")
@click.option("--session", help="Session id; default: a new one.")
@click.option("--started-at", help="ISO 8601 start of the first file; later files follow it. "
              "Default: each file's modification time minus its length.")
@click.option("--no-wait", is_flag=True, help="Return once uploaded; do not wait for indexing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def ingest(paths: tuple[Path, ...], guild: str, channel: str, speaker: str, session: str | None,
           started_at: str | None, no_wait: bool, as_json: bool) -> None:
    """Add recordings (any common audio format) or .vtt/.srt subtitle files."""
    from tqdm import tqdm

    from homelabpi.ingest import ingest as run_ingest

    start = parse_time(started_at, "--started-at") if started_at else None
    # One bar in seconds of audio: it moves as a long recording is transcribed, not per file.
    bar = tqdm(total=0.0, unit="s", unit_scale=False, disable=not sys.stderr.isatty() or None,
               file=sys.stderr, desc="ingest", bar_format="{desc}: {percentage:3.0f}%|{bar}| "
               "{n:.0f}/{total:.0f} s of audio [{elapsed}<{remaining}]")
    done: dict[int, float] = {}

    def moved(clip, seconds: float) -> None:
        if id(clip) not in done:
            bar.total += clip.seconds
            done[id(clip)] = 0.0
        step = min(seconds, clip.seconds) - done[id(clip)]
        if step > 0:
            done[id(clip)] += step
            bar.update(step)
        else:
            bar.refresh()

    report = run_ingest(_client(), list(paths), guild=guild, channel=channel, speaker=speaker,
                        session=session, started_at=start, wait=not no_wait, progress=moved)
    bar.close()
    if as_json:
        _print_json(report.as_dict())
    else:
        click.echo(f"session {report.session}")
        for c in report.clips:
            where = f" → {c.key}" if c.key else ""
            click.echo(f"  {c.status:8} {c.path}{where}" + (f": {c.error}" if c.error else ""))
    if not report.ok:
        failed = sum(c.status not in ("indexed", "queued") for c in report.clips)
        click.echo(f"error: {failed} of {len(report.clips)} file(s) failed; see above", err=True)
        sys.exit(1)


@main.command()
@click.argument("question")
@click.option("--guild", required=True)
@click.option("--thread", default="", metavar="ID",
              help="Conversation id: a follow-up (\"and Bob?\") with the same id builds on the "
                   "previous question, as in a Discord thread.")
@click.option("--json", "as_json", is_flag=True)
def ask(question: str, guild: str, thread: str, as_json: bool) -> None:
    """Ask about what was said; the answer cites who said it and when."""
    result = _client().ask(question, guild, asker=os.environ.get("USER", ""), thread=thread)
    if as_json:
        _print_json(result)
        return
    click.echo(result["answer"])
    if result["mode"] == "passage":
        click.echo("(best matching passage; no reader model is installed)")
    for c in result["citations"][:5]:
        click.echo(f"  — {c['speaker']}, {c['start']} ({c['channel']}, session {c['session']}): "
                   f"\"{c['text']}\"")


@main.command()
@click.argument("text")
@click.option("--guild", required=True)
@click.option("--limit", default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def search(text: str, guild: str, limit: int, as_json: bool) -> None:
    """Full-text search over what was said."""
    hits = _client().search(text, guild, limit)
    if as_json:
        _print_json(hits)
        return
    if not hits:
        click.echo("no matches")
    for h in hits:
        click.echo(f"{h['start']}  {h['speaker']}: {h['text']}  [{h['session']}]")


@main.command()
@click.option("--guild", required=True)
@click.option("--json", "as_json", is_flag=True)
def sessions(guild: str, as_json: bool) -> None:
    """Recorded sessions, newest first."""
    found = _client().sessions(guild)
    if as_json:
        _print_json(found)
        return
    if not found:
        click.echo("no sessions")
    for s in found:
        failed = f", {s['failed']} failed" if s["failed"] else ""
        click.echo(f"{s['session']}  {s['started_at']} → {s['ended_at']}  #{s['channel']}  "
                   f"{', '.join(s['speakers'])}  ({s['clips']} clips{failed})")


@main.command()
@click.argument("session")
@click.option("--format", "fmt", type=click.Choice(["md", "srt", "vtt", "json"]), default="md",
              show_default=True)
@click.option("--guild", help="Only look in this guild.")
def transcript(session: str, fmt: str, guild: str | None) -> None:
    """A session's transcript, all speakers in time order."""
    from homelabpi.formats import render

    click.echo(render(_client().transcript(session, guild), fmt), nl=False)


@main.command()
def reindex() -> None:
    """Rebuild the SQLite index from the transcripts and query logs in the store."""
    from tqdm import tqdm

    from homelabpi.index.rebuild import rebuild
    from homelabpi.runtime import Runtime

    rt = Runtime(_settings())
    total = sum(1 for p in ("transcripts/", "queries/") for _ in rt.store.list(p))
    with tqdm(total=total, unit="obj", disable=not sys.stderr.isatty() or None,
              file=sys.stderr, desc="reindex") as bar:
        counts = rebuild(rt, progress=lambda key: bar.update(1))
    click.echo(f"reindexed {counts['transcripts']} transcripts and {counts['queries']} queries"
               + (f"; skipped {counts['skipped']} (see log)" if counts["skipped"] else ""))


@main.command()
def doctor() -> None:
    """What is configured, what works, what is missing and how to fix it."""
    from homelabpi.doctor import configured, run_checks

    settings = _settings()
    click.echo("settings:")
    for env, value in configured(settings):
        click.echo(f"  {env} = {value}")
    click.echo("checks:")
    failed = False
    for check in run_checks(settings):
        mark = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}[check.state]
        click.echo(f"  [{mark}] {check.name}: {check.detail}")
        if check.fix:
            click.echo(f"         fix: {check.fix}")
        failed |= check.state == "fail"
    sys.exit(1 if failed else 0)


@main.command()
@click.option("--guild", required=True)
@click.option("--limit", default=20, show_default=True, help="How many, newest first.")
@click.option("--json", "as_json", is_flag=True)
def queries(guild: str, limit: int, as_json: bool) -> None:
    """Questions asked in a guild: answer, mode, confidence, latency, who asked, citations."""
    found = _client().queries(guild, limit)
    if as_json:
        _print_json(found)
        return
    if not found:
        click.echo("no questions asked yet")
    for q in found:
        who = f" by {q['asker']}" if q["asker"] else ""
        thread = f" [thread {q['thread']}]" if q["thread"] else ""
        click.echo(f"{q['asked_at']}{who}{thread}: {q['question']}")
        click.echo(f"  → {q['answer']}  ({q['mode']}, confidence {q['confidence']:.2f}, "
                   f"{q['latency_ms']} ms)")
        if q["citations"]:
            c = q["citations"][0]
            click.echo(f"    — {c['speaker']}, {c['start']} (session {c['session']})")


def _register_models() -> None:
    from homelabpi.models import models_group

    main.add_command(models_group)


_register_models()


def _register_cluster() -> None:
    from homelabpi.cluster.commands import cluster_group

    main.add_command(cluster_group)


_register_cluster()

if __name__ == "__main__":
    main()
