"""The echo canceller's far-end reference: pairing the speaker's periods with the microphone's."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from kioskd.media.echo_reference import MAX_BUFFER_MS, PLAYING_TIMEOUT_S, EchoReference

N = 960  # a 20 ms period at 48 kHz
CARD = 3 * N  # what a card's buffer holds after each write (the speaker's three periods)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def period(value: int, frames: int = N) -> bytes:
    return np.full(frames, value, dtype=np.int16).tobytes()


def test_the_microphone_gets_what_the_speaker_wrote_in_order_with_its_delay():
    reference = EchoReference(clock=Clock())
    reference.start_reading()
    for value in (1, 2, 3):  # a card takes three periods at once (its buffer), ...
        reference.played(period(value), 1, CARD)
    taken = []
    for value in (4, 5, 6):  # ... then one a period, as the microphone delivers one
        reference.played(period(value), 1, CARD)
        taken.append(reference.take(N))
    assert [int(chunk[0]) for chunk in taken] == [1, 2, 3]
    assert all(len(chunk) == N and len(set(chunk.tolist())) == 1 for chunk in taken)
    # Period 1 went out 60 ms before period 4 was written: it is heard over the period just
    # captured, so its echo starts at the start of that period.
    assert reference.delay_hint_ms == 0
    assert reference.stats()["reference_realignments"] == 0


def test_the_delay_hint_follows_the_devices_buffers():
    reference = EchoReference(clock=Clock())
    # Written alone into a card's full buffer: its first sample is heard 40 ms from now, and
    # the period just captured began 20 ms ago: the echo comes 60 ms into the capture.
    reference.played(period(1), 1, CARD)
    reference.take(N)
    assert reference.delay_hint_ms == 60
    reference.played(period(2), 1, 0)  # a plugin that plays at once
    reference.take(N)
    assert reference.delay_hint_ms == 0


def test_a_speaker_that_runs_ahead_is_cut_back_and_counted():
    """More waiting than the device holds plus a period: the microphone is behind (clocks
    drifting apart), the reference would come after its echo. The oldest is dropped."""
    reference = EchoReference(clock=Clock())
    for value in range(1, 7):  # six periods waiting, the device holds three
        reference.played(period(value), 1, CARD)
    chunk = reference.take(N)
    assert chunk is not None
    # Kept: the device's three periods and the one being captured; 2 periods were dropped.
    assert int(chunk[0]) == 3
    assert reference.stats()["reference_dropped_ms"] == 40
    assert reference.stats()["reference_realignments"] == 1
    assert reference.delay_hint_ms == 0


def test_a_speaker_that_falls_behind_is_made_up_with_silence_and_counted():
    reference = EchoReference(clock=Clock())
    reference.played(period(7, N // 2), 1, 0)  # half a period: the speaker's clock is slower
    chunk = reference.take(N)
    assert chunk is not None and len(chunk) == N
    assert chunk[: N // 2].tolist() == [7] * (N // 2) and not chunk[N // 2:].any()
    assert reference.stats()["reference_padded_ms"] == 10
    assert reference.stats()["reference_realignments"] == 1


def test_no_reference_without_a_speaker_playing():
    clock = Clock()
    reference = EchoReference(clock=clock)
    assert reference.take(N) is None  # no speaker has played
    reference.played(period(1), 1, CARD)
    assert reference.take(N) is not None
    clock.now += PLAYING_TIMEOUT_S + 0.01  # the speaker stopped (the call's sound ended)
    assert reference.take(N) is None
    assert reference.stats()["reference_padded_ms"] == 0  # silence then is not a realignment


def test_stereo_is_mixed_down_and_a_different_rate_is_refused_once(
    caplog: pytest.LogCaptureFixture,
):
    reference = EchoReference(clock=Clock())
    stereo = np.tile(np.array([1000, 3000], dtype=np.int16), N).tobytes()
    reference.played(stereo, 2, CARD, 48000)
    chunk = reference.take(N)
    assert chunk is not None and chunk.tolist() == [2000] * N
    with caplog.at_level(logging.WARNING, logger="kioskd.media.echo_reference"):
        reference.played(period(5), 1, CARD, 44100)
        reference.played(period(5), 1, CARD, 44100)
    assert len(caplog.records) == 1 and "44100 Hz" in caplog.records[0].getMessage()
    chunk = reference.take(N)
    assert chunk is not None and not chunk.any()  # nothing of it was taken in


def test_nobody_reading_keeps_it_bounded_and_a_new_microphone_starts_afresh():
    reference = EchoReference(clock=Clock())
    for value in range(100):  # 2 s with no microphone reading (a microphone opened again)
        reference.played(period(value), 1, CARD)
    assert len(reference._buffer) == 48000 * MAX_BUFFER_MS // 1000
    reference.start_reading()
    # What was heard already is gone; what the device still holds is kept, so the new
    # microphone's periods pair up with it as the later ones will: no realignment.
    reference.played(period(100), 1, CARD)
    chunk = reference.take(N)
    assert chunk is not None and int(chunk[0]) == 97  # the oldest of the device's three
    assert reference.stats()["reference_realignments"] == 0
    assert reference.delay_hint_ms == 0
