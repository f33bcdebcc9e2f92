"""Open-loop HTTP load: requests are sent on a fixed schedule whatever the server does.

Latency is measured from each request's *scheduled* send time, so a slow server cannot slow
the generator down and hide its own queueing (no coordinated omission).

The client is a minimal HTTP/1.1 keep-alive client on raw asyncio protocols: it writes
pre-built request bytes and reads ``Content-Length`` bodies. A general client (httpx) costs
several hundred microseconds of CPU per request, which on a 2-core machine would compete with
the server under test and measure the generator rather than the service.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np


@dataclass
class LoadResult:
    rate: float
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    cores: dict[str, float] = field(default_factory=dict)  # CPU seconds per wall second

    @property
    def sent(self) -> int:
        return len(self.latencies_ms) + self.errors

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    @property
    def achieved(self) -> float:
        return len(self.latencies_ms) / self.seconds


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request in flight at a time."""

    def __init__(self, done: Callable[[_Connection, int | None], None]) -> None:
        self.done = done
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send(self, request: bytes) -> None:
        assert self.transport is not None
        self.busy = True
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].decode("latin-1").split("\r\n")
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if len(self.buffer) < end + 4 + length:
            return
        self.buffer = self.buffer[end + 4 + length :]
        self.busy = False
        self.done(self, int(head[0].split(" ", 2)[1]))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.busy:
            self.busy = False
            self.done(self, None)


def _request(path: str, host: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def open_loop(
    url: str,
    body: Callable[[int], bytes],
    rate: float,
    seconds: float,
    headers: dict[str, str] | None = None,
    connections: int = 64,
) -> LoadResult:
    """Send ``rate * seconds`` POSTs on schedule; wait for every answer (10 s at most)."""
    result = LoadResult(rate=rate, seconds=seconds)
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    total = int(rate * seconds)
    requests = [
        _request(parts.path, f"{host}:{port}", body(i), headers or {}) for i in range(total)
    ]
    loop = asyncio.get_running_loop()
    idle: deque[_Connection] = deque()
    waiting: deque[int] = deque()  # due requests with no free connection yet
    in_flight: dict[_Connection, float] = {}
    all_done = loop.create_future()
    answered = 0
    start = time.perf_counter() + 0.05
    due = [start + i / rate for i in range(total)]

    def dispatch(connection: _Connection, index: int) -> None:
        in_flight[connection] = due[index]
        connection.send(requests[index])

    def done(connection: _Connection, status: int | None) -> None:
        nonlocal answered
        answered += 1
        scheduled = in_flight.pop(connection)
        if status is None or status >= 500:
            result.errors += 1
        else:
            result.latencies_ms.append((time.perf_counter() - scheduled) * 1000)
        if status is not None:
            result.statuses[status] = result.statuses.get(status, 0) + 1
        if connection.transport is not None:
            if waiting:
                dispatch(connection, waiting.popleft())
            else:
                idle.append(connection)
        if answered == total and not all_done.done():
            all_done.set_result(None)

    for _ in range(connections):
        _, protocol = await loop.create_connection(lambda: _Connection(done), host, port)
        idle.append(protocol)
    for i in range(total):
        delay = due[i] - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if idle:
            dispatch(idle.popleft(), i)
        else:
            waiting.append(i)
    try:
        await asyncio.wait_for(all_done, timeout=10)
    except TimeoutError:
        result.errors += total - answered
    finally:
        for connection in [*idle, *in_flight]:
            if connection.transport is not None:
                connection.transport.close()
    return result
