"""Components start in order and stop in reverse, every one of them."""

from __future__ import annotations

import asyncio
import logging

import pytest

from kioskd import lifecycle


class Part:
    def __init__(self, name: str, log: list[str], fail_start: bool = False,
                 fail_stop: bool = False, hang_stop: bool = False) -> None:
        self.name, self.log = name, log
        self.fail_start, self.fail_stop, self.hang_stop = fail_start, fail_stop, hang_stop

    async def start(self) -> None:
        if self.fail_start:
            raise RuntimeError(f"{self.name} cannot start")
        self.log.append(f"start {self.name}")

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")
        if self.fail_stop:
            raise RuntimeError(f"{self.name} cannot stop")
        if self.hang_stop:
            await asyncio.Event().wait()


async def test_every_component_stops_in_reverse_even_when_one_fails(caplog, monkeypatch):
    monkeypatch.setattr(lifecycle, "STOP_TIMEOUT_S", 0.1)
    log: list[str] = []
    parts = [Part("call log", log), Part("screen", log, fail_stop=True),
             Part("signaling", log, hang_stop=True), Part("runner", log)]
    await lifecycle.start_all(parts)
    with caplog.at_level(logging.ERROR):
        await lifecycle.stop_all(parts)
    assert log == ["start call log", "start screen", "start signaling", "start runner",
                   "stop runner", "stop signaling", "stop screen", "stop call log"]
    assert "stopping the screen failed" in caplog.text
    assert "stopping the signaling took more than" in caplog.text


async def test_a_component_that_cannot_start_stops_the_ones_before_it():
    log: list[str] = []
    parts = [Part("control", log), Part("call log", log), Part("screen", log, fail_start=True),
             Part("runner", log)]
    with pytest.raises(RuntimeError, match="screen cannot start"):
        await lifecycle.start_all(parts)
    assert log == ["start control", "start call log", "stop call log", "stop control"]


async def test_the_first_long_lived_task_to_end_takes_the_rest_down():
    stopped = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    async def dies() -> None:
        raise OSError("render thread died")

    with pytest.raises(OSError, match="render thread died"):
        await lifecycle.run_until_one_ends({"dispatcher": forever, "screen": dies})
    assert stopped.is_set()
