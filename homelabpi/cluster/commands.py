"""`homelabpi cluster …`: the click commands; the work is in homelabpi.cluster.setup."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("cluster")
def cluster_group() -> None:
    """Set up a faasd Pi's MinIO for HomeLabPi (run on the Pi, as root)."""


@cluster_group.command("setup")
@click.option("--endpoint", default="http://127.0.0.1:9000", show_default=True,
              help="MinIO's S3 endpoint.")
@click.option("--bucket", default=None, help="Bucket; default HOMELABPI_S3_BUCKET (homelabpi).")
@click.option("--secrets-dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path("/var/lib/faasd/secrets"), show_default=True,
              help="faasd's secrets directory (faasd/install.sh fills it).")
@click.option("--secrets-only", is_flag=True,
              help="Only write the function secrets (a Pi whose MinIO runs elsewhere).")
def setup_command(endpoint: str, bucket: str | None, secrets_dir: Path,
                  secrets_only: bool) -> None:
    """Bucket, the functions' MinIO user and policy, event rules and function secrets.

    Safe to run again: every step replaces what it set before.
    """
    from homelabpi.cluster import setup
    from homelabpi.errors import HomeLabPiError
    from homelabpi.settings import Settings

    bucket = bucket or Settings.from_env().s3_bucket
    try:
        done = setup.run(endpoint, bucket, secrets_dir, secrets_only=secrets_only)
    except HomeLabPiError as exc:
        raise click.ClickException(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - MinIO down or refusing: say which and where
        raise click.ClickException(f"setup against {endpoint} failed: {type(exc).__name__}: "
                                   f"{exc}") from exc
    for step in done.steps:
        click.echo(step)
    click.echo(f"HomeLabPi storage is ready at {endpoint}. Next: faas-cli deploy -f stack.yml")
