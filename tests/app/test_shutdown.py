"""A shutdown never hangs on a task that does not stop: it waits a bounded time, logs the task
with its stack, and goes on (a swallowed cancellation is a bug the log must point at)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from app import bootstrap


async def test_a_task_that_swallows_its_cancellation_is_logged_not_waited_for(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # the bug the shutdown must survive

    quick = asyncio.create_task(asyncio.sleep(3600), name="quick")
    task = asyncio.create_task(stubborn(), name="stubborn")
    await asyncio.sleep(0)
    quick.cancel()
    task.cancel()
    caplog.set_level(logging.ERROR, "app.bootstrap")
    await bootstrap._stopped("background", [quick, task], 0.2)
    assert quick.cancelled() and not task.done()
    assert "background task stubborn still running" in caplog.text
    assert "stubborn" in caplog.text and "quick" not in caplog.text
    release.set()
    await task
