"""SwitchableTrack tells the app when its source fails mid-call, and only then."""

from __future__ import annotations

import asyncio

import pytest
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from kioskd.media.switch import SwitchableTrack
from kioskd.media.synthetic import SyntheticTone


class FailingSource(MediaStreamTrack):
    """A tone that fails, like an unplugged microphone, once `fail()` is called."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.tone = SyntheticTone()
        self.error: str | None = None

    def fail(self, error: str) -> None:
        self.error = error

    async def recv(self):
        if self.error is not None or self.readyState != "live":
            raise MediaStreamError
        return await self.tone.recv()

    def stop(self) -> None:
        super().stop()
        self.tone.stop()


async def test_a_source_that_fails_calls_on_ended_once_with_its_error():
    source = FailingSource()
    track = SwitchableTrack(source)
    ended: list[str] = []
    track.on_ended = ended.append
    await track.recv()
    source.fail("No such device")
    for _ in range(2):
        with pytest.raises(MediaStreamError):
            await track.recv()
    assert ended == ["No such device"]


async def test_stopping_the_track_is_not_a_failure():
    source = FailingSource()
    track = SwitchableTrack(source)
    ended: list[str] = []
    track.on_ended = ended.append
    await track.recv()
    track.stop()  # the call ended
    with pytest.raises(MediaStreamError):
        await track.recv()
    assert ended == [] and source.readyState == "ended"


async def test_a_source_that_ends_without_an_error_says_so():
    source = FailingSource()
    track = SwitchableTrack(source)
    ended: list[str] = []
    track.on_ended = ended.append
    source.stop()  # e.g. attach_sender stopping a pre-encoded track the far end can't take
    with pytest.raises(MediaStreamError):
        await track.recv()
    assert ended == ["its source ended"]


async def test_a_failing_callback_does_not_change_how_the_track_ends():
    source = FailingSource()
    track = SwitchableTrack(source)
    track.on_ended = lambda error: 1 / 0
    source.fail("gone")
    with pytest.raises(MediaStreamError):
        await track.recv()


async def test_a_replacement_source_carries_on_the_timestamps():
    source = FailingSource()
    track = SwitchableTrack(source)
    track.wait_for_replacement = True
    ended: list[str] = []
    track.on_ended = ended.append
    first = [await track.recv() for _ in range(3)]
    source.fail("No such device")
    waiting = asyncio.ensure_future(track.recv())  # waits for the device to come back
    await asyncio.sleep(0.1)  # the device is away a while (not a synchronisation)
    assert not waiting.done() and ended == ["No such device"]
    track.replace_source(FailingSource())  # opened again: its own pts start at 0
    frame = await asyncio.wait_for(waiting, 5)
    gap = (frame.pts - first[-1].pts) * frame.time_base
    assert 0.1 <= gap < 0.5  # the pause, not a jump back to 0
    assert source.readyState == "ended"  # the old one let go


async def test_stopping_a_track_that_waits_for_its_device_ends_it():
    source = FailingSource()
    track = SwitchableTrack(source)
    track.wait_for_replacement = True
    source.fail("gone")
    waiting = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0)
    track.stop()  # the call ended before the device came back
    with pytest.raises(MediaStreamError):
        await asyncio.wait_for(waiting, 5)
