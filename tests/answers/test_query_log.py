"""`homelabpi queries`: the query log, read through the answer function and the Client."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from click.testing import CliRunner

from homelabpi.cli import main
from homelabpi.client import Client
from homelabpi.ingest import ingest
from homelabpi.runtime import Runtime
from homelabpi.settings import Settings

VTT = """WEBVTT

00:00:01.000 --> 00:00:04.000
<v Alice>The NAS is at 192.168.1.50 now.

00:00:05.000 --> 00:00:08.000
<v Bob>And Grafana runs on port 3000.
"""


def test_queries_command_lists_questions_newest_first(tmp_path, monkeypatch):
    monkeypatch.setenv("HOMELABPI_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HOMELABPI_EMBEDDINGS", "false")
    monkeypatch.delenv("HOMELABPI_GATEWAY", raising=False)
    settings = Settings.from_env()
    client = Client(settings, Runtime(settings))
    (tmp_path / "s.vtt").write_text(VTT)
    assert ingest(client, [tmp_path / "s.vtt"], guild="g1", channel="lab", speaker="Alice",
                  started_at=datetime(2026, 11, 20, 20, tzinfo=UTC)).ok
    first = client.ask("What is the NAS IP?", "g1", asker="alice", thread="t1")
    client.ask("And Grafana's port?", "g1", asker="bob", thread="t1")
    client.ask("What is the wifi password?", "g1", asker="carol")
    assert first["mode"] == "passage" and "192.168.1.50" in first["answer"]

    runner = CliRunner()
    out = runner.invoke(main, ["queries", "--guild", "g1", "--json"])
    assert out.exit_code == 0, out.output
    logged = json.loads(out.output)
    assert [q["question"] for q in logged] == ["What is the wifi password?", "And Grafana's port?",
                                               "What is the NAS IP?"]
    assert [q["asker"] for q in logged] == ["carol", "bob", "alice"]
    assert [q["thread"] for q in logged] == ["", "t1", "t1"]
    assert logged[0]["mode"] == "not-found"
    assert "3000" in logged[1]["answer"] and logged[1]["citations"][0]["speaker"] == "Bob"
    assert logged[2]["asked_at"].endswith("Z")

    out = runner.invoke(main, ["queries", "--guild", "g1", "--limit", "1"])
    assert out.exit_code == 0, out.output
    assert "What is the wifi password?" in out.output and "not-found" in out.output
    assert "NAS" not in out.output
    assert runner.invoke(main, ["queries", "--guild", "other"]).output.strip() == \
        "no questions asked yet"
