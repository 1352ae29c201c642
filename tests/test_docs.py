"""The README must match the code: every setting and every command is documented."""

from __future__ import annotations

from pathlib import Path

from homelabpi.cli import main
from homelabpi.settings import documented

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_setting_is_in_the_readme_table():
    missing = [env for env, _ in documented() if f"| `{env}` |" not in README]
    assert missing == []


def test_every_command_is_in_the_readme():
    missing = [name for name in main.commands if f"`homelabpi {name}" not in README]
    assert missing == []


def test_ci_runs_the_readme_test_command():
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert "./run test" in ci and "./run test" in README
