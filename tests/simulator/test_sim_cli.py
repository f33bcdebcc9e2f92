"""The ``simulate`` command line: generate, replay to a real HTTP server, and clear errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from typer.testing import CliRunner

from simulator.cli import app

runner = CliRunner()
SMALL = ["--days", "4", "--cards", "60", "--merchants", "40", "--seed", "3"]


def _generate(tmp_path: Path, *extra: str) -> Path:
    out = tmp_path / "stream.jsonl"
    result = runner.invoke(app, ["generate", *SMALL, "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return out


def test_generate_writes_the_stream_truth_and_summary(tmp_path: Path) -> None:
    truth, summary = tmp_path / "truth.jsonl", tmp_path / "summary.json"
    out = _generate(tmp_path, "--truth-out", str(truth), "--summary-out", str(summary), "-q")
    lines = out.read_text().splitlines()
    facts = json.loads(summary.read_text())
    assert len(truth.read_text().splitlines()) == facts["transactions"]
    assert len(lines) == facts["transactions"] + sum(facts["labels"].values())
    assert facts["campaign_onset"] == "2026-01-03T00:00:00.000Z"
    again = tmp_path / "again.jsonl"
    runner.invoke(app, ["generate", *SMALL, "--out", str(again), "-q"])
    assert again.read_bytes() == out.read_bytes()


def test_generate_to_stdout_with_another_start() -> None:
    result = runner.invoke(
        app, ["generate", *SMALL, "--out", "-", "-q", "--start", "2025-03-01T00:00:00+00:00"]
    )
    assert result.exit_code == 0
    first = json.loads(result.stdout.splitlines()[0])
    assert first["at"].startswith("2025-03-01")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate", "--out", "x.jsonl", "--start", "yesterday"], "RFC 3339"),
        (["generate", "--out", "x.jsonl", "--start", "2026-01-01T00:00:00"], "offset"),
        (["generate", "--out", "x.jsonl", "--campaign", "heist"], "unknown scenario"),
        (["generate", "--out", "/nonexistent-dir/x.jsonl", *SMALL], "cannot write"),
        (["replay", "/nonexistent/stream.jsonl", "--to", "http"], "does not exist"),
    ],
)
def test_errors_are_clear_and_without_traceback(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_replay_argument_errors(tmp_path: Path) -> None:
    out = _generate(tmp_path, "-q")
    cases = [
        (["--to", "http", "--api-key", "k", "--rate", "5", "--speedup", "2"], "not both"),
        (["--to", "kafka"], "--bootstrap"),
        (["--to", "http"], "--api-key"),
        (["--to", "pigeon"], "pigeon"),
    ]
    for extra, message in cases:
        result = runner.invoke(app, ["replay", str(out), *extra], env={"RIVERGUARD_API_KEY": ""})
        assert result.exit_code == 2, extra
        assert message in result.output
        assert "Traceback" not in result.output


def test_replay_reports_a_malformed_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text('{"kind": "transaction"\n')
    result = runner.invoke(
        app,
        [
            "replay",
            str(path),
            "--to",
            "http",
            "--api-key",
            "k",
            "--url",
            "http://127.0.0.1:9",
            "--no-progress",
        ],
    )
    assert result.exit_code == 1
    assert "line 1" in result.output
    assert "Traceback" not in result.output


@pytest.fixture
def server() -> Iterator[tuple[str, list[tuple[str, str, str | None]]]]:
    """A real uvicorn server on a free loopback port that records what it receives."""
    seen: list[tuple[str, str, str | None]] = []
    api = FastAPI()

    @api.post("/v1/transactions")
    async def transactions(request: Request) -> JSONResponse:
        body = await request.json()
        seen.append(("transaction", body["transaction_id"], request.headers.get("x-api-key")))
        return JSONResponse({"ok": True})

    @api.post("/v1/labels")
    async def labels(request: Request) -> JSONResponse:
        body = await request.json()
        seen.append(("label", body["transaction_id"], request.headers.get("x-api-key")))
        return JSONResponse({"ok": True}, status_code=202)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(api, log_level="warning", lifespan="off", ws="none")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", seen
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_replay_over_http_to_a_real_server(
    tmp_path: Path, server: tuple[str, list[tuple[str, str, str | None]]]
) -> None:
    url, seen = server
    out = _generate(tmp_path, "-q")
    result = runner.invoke(
        app,
        [
            "replay",
            str(out),
            "--to",
            "http",
            "--url",
            url,
            "--no-progress",
            "--limit",
            "200",
            "--concurrency",
            "8",
        ],
        env={"RIVERGUARD_API_KEY": "secret-key"},
    )
    assert result.exit_code == 0, result.output
    assert len(seen) == 200
    assert {key for _, _, key in seen} == {"secret-key"}
    sent = [
        json.loads(line)["data"]["transaction_id"] for line in out.read_text().splitlines()[:200]
    ]
    assert sorted(tx for _, tx, _ in seen) == sorted(sent)
    assert "accepted" in result.output


def test_replay_to_an_unreachable_broker_fails_cleanly(tmp_path: Path) -> None:
    out = _generate(tmp_path, "-q")
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = runner.invoke(
        app,
        ["replay", str(out), "--to", "kafka", "--bootstrap", f"127.0.0.1:{port}", "--no-progress"],
    )
    assert result.exit_code == 1
    assert "KafkaConnectionError" in result.output
    assert "Traceback" not in result.output


def test_python_dash_m_simulator_runs() -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [sys.executable, "-m", "simulator", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert "generate" in done.stdout and "replay" in done.stdout
