"""ALSA back ends: a microphone source track and a speaker sink (pyalsaaudio).

Each device is owned by one thread that does the blocking reads or writes; the asyncio side
and the thread meet at a small buffer (the microphone's is a `kioskd.handoff.Handoff`; the
speaker's is its playout buffer, under a lock), and neither ever waits for the other.

Pacing. A sound card is clocked: a read blocks until a period has been captured and a write
blocks while the card's buffer is full, so the card sets the pace. ALSA's `null` and `file`
plugins (the tests' devices) are not clocked: they return at once. Each thread finds out which
kind it has from the first transfers (a clocked device blocks for about a period) and, on an
unclocked one, paces itself by the wall clock, so the same code runs on a card and on the
plugins and never spins. The microphone's `recv()` is paced by the stream clock like the
synthetic tone: a frame every 20 ms whatever the device does; when no captured audio is
waiting it sends silence (an underrun) rather than stall the call.

Echo. The speaker hands every period it writes (silence too) to the kiosk's EchoReference;
the microphone's capture thread runs each captured period through its processing stage
(media/processing.py: echo cancellation against that reference, noise suppression, gain)
before the asyncio side sees it.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import alsaaudio
import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ..handoff import Handoff, HandoffClosed
from .backend import ConfiguredBackend
from .capture import DeviceUnavailable
from .echo_reference import EchoReference
from .measure import MeasuringSink
from .processing import AudioProcessing, ProcessingOptions
from .synthetic import _StreamClock  # the synthetic tone's clock: one pacing rule for both

if TYPE_CHECKING:
    from ..config import Config

log = logging.getLogger(__name__)

BYTES_PER_SAMPLE = 2  # s16
CAPTURE_QUEUE_PERIODS = 10  # captured periods kept for the asyncio side; the oldest go first
# Periods left waiting after recv() takes one. More means the device runs faster than this
# machine's clock (or recv() skipped slots): the oldest are dropped so latency stays bounded.
MAX_WAITING_PERIODS = 3
PLAYBACK_DEVICE_PERIODS = 3  # the card's own buffer, in periods: 60 ms at 20 ms periods
# Finding out whether a device is clocked: this many slow transfers in a row say it is (one
# can be a CPU quota freezing the thread); a fast read, or this many fast periods written
# past a full buffer, say it is not.
CLOCKED_AFTER_SLOW_WRITES = 3
UNCLOCKED_AFTER_PERIODS = 3
FIRST_PERIOD_TIMEOUT_S = 0.2  # how long the first recv() waits for the device's first period


class AlsaDeviceError(DeviceUnavailable):
    """An ALSA device cannot be opened; the message names it and says what to do."""


def _reason(error: str) -> str:
    """The DeviceUnavailable reason of pyalsaaudio's message (libasound's strerror)."""
    lowered = error.lower()
    if "busy" in lowered:  # EBUSY: "Device or resource busy"
        return "busy"
    if "no such" in lowered or "unknown" in lowered:  # ENOENT, ENODEV: no card, no PCM name
        return "missing"
    if "permission" in lowered:
        return "denied"
    return "failed"


def _advice(direction: str, device: str, error: str) -> str:
    listing = "arecord -L" if direction == "capture" else "aplay -L"
    setting = "audio.capture_device" if direction == "capture" else "audio.playback_device"
    reason = _reason(error)
    if reason == "busy":
        hint = ("another program is using it (see `fuser -v /dev/snd/*`): stop it, or use a "
                'shared device such as "default" or a dsnoop/dmix one')
    elif reason == "missing":
        hint = f"no such device here: `{listing}` lists the {direction} devices; set {setting}"
    elif reason == "denied":
        hint = 'permission denied: add the kiosk user to the "audio" group'
    else:
        hint = f"`{listing}` lists the {direction} devices; set {setting}"
    return f'cannot open ALSA {direction} device "{device}" ({error}): {hint}'


def open_pcm(
    direction: str, device: str, rate: int, channels: int, period_frames: int, periods: int
) -> tuple[Any, dict[str, Any]]:
    """Open `device` for "capture" or "playback" as interleaved s16 at `rate`, `channels`.

    Returns the PCM and its info() (the period size may differ from the one asked for).
    Raises AlsaDeviceError when the device is missing, busy, or cannot take the format.
    """
    pcm_type = alsaaudio.PCM_CAPTURE if direction == "capture" else alsaaudio.PCM_PLAYBACK
    try:
        pcm = alsaaudio.PCM(pcm_type, alsaaudio.PCM_NORMAL, device=device, rate=rate,
                            channels=channels, format=alsaaudio.PCM_FORMAT_S16_LE,
                            periodsize=period_frames, periods=periods)
    except alsaaudio.ALSAAudioError as exc:
        # pyalsaaudio's message is "<strerror> [<device>]"; keep the first part.
        error = str(exc).rsplit(" [", 1)[0]
        raise AlsaDeviceError(_advice(direction, device, error), _reason(error)) from None
    info = pcm.info()
    # The PCM takes the nearest settings the device has; a raw hw: device may not convert.
    if (info["rate"], info["channels"], info["format"]) != (
        rate, channels, alsaaudio.PCM_FORMAT_S16_LE
    ):
        pcm.close()
        raise AlsaDeviceError(
            f'ALSA {direction} device "{device}" cannot do {rate} Hz, {channels} channel(s), '
            f"16-bit: it offers {info['rate']} Hz, {info['channels']} channel(s), "
            f"{info['format_name']}; use a converting device (\"default\" or \"plughw:...\")",
            "unsupported",
        )
    return pcm, info


class _WallClockPacer:
    """Paces transfers to an unclocked device: sleeps until `frames` have had their time."""

    def __init__(self, rate: int, lead_frames: int = 0) -> None:
        self.rate, self.lead_frames = rate, lead_frames
        self.start = time.monotonic()
        self.frames = 0

    def advance(self, frames: int) -> None:
        self.frames += frames
        due = self.start + (self.frames - self.lead_frames) / self.rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        elif now - due > 0.5:
            # Stalled (a suspended machine, a debugger): resume from now, don't burst.
            self.start, self.frames = now, self.lead_frames


def _describe_clock(clocked: bool) -> str:
    return "clocked" if clocked else "not clocked (a null or file plugin?): paced by the wall clock"


class AlsaMicrophone(MediaStreamTrack, ConfiguredBackend):
    """An audio track from an ALSA capture device: 20 ms s16 frames, pts in samples.

    The device is opened here, so a missing or busy one fails at once (AlsaDeviceError); the
    capture thread starts with the first `recv()`. If the device fails later (a USB microphone
    pulled out), the track ends (recv() raises MediaStreamError) and the call goes on.
    `clocked`: None finds out from the first read; True or False says so. `processing`: what
    the processing stage does (None: no stage), with `echo_reference` as its far end.
    """

    kind = "audio"
    takes_echo_reference = True  # opening hands it the kiosk's EchoReference

    def __init__(
        self,
        device: str = "default",
        sample_rate: int = 48000,
        channels: int = 1,
        period_ms: int = 20,
        clocked: bool | None = None,
        processing: ProcessingOptions | None = None,
        echo_reference: EchoReference | None = None,
    ) -> None:
        super().__init__()
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, not {channels}")
        if processing is not None and processing.any and channels != 1:
            raise ValueError("the microphone's processing stage takes mono audio only")
        if sample_rate * period_ms % 1000:
            raise ValueError(f"{period_ms} ms is not a whole number of samples at {sample_rate} Hz")
        self.device, self.sample_rate, self.channels = device, sample_rate, channels
        self.samples_per_frame = sample_rate * period_ms // 1000
        self._frame_bytes = self.samples_per_frame * channels * BYTES_PER_SAMPLE
        self._layout = "mono" if channels == 1 else "stereo"
        self._time_base = fractions.Fraction(1, sample_rate)
        self._clock = _StreamClock(1000 / period_ms)
        self._silence = bytes(self._frame_bytes)
        # Captured periods, one frame each; the capture thread closes it when it ends.
        self._periods: Handoff[bytes] = Handoff(CAPTURE_QUEUE_PERIODS)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.clocked = clocked
        self.frames = 0  # frames delivered by recv()
        self.underruns = 0  # frames sent as silence: nothing captured was waiting
        self.overruns = 0  # the device's own overruns (the capture thread was late)
        self._pcm, info = open_pcm("capture", device, sample_rate, channels,
                                   self.samples_per_frame, 4)
        self._device_period = int(info["period_size"])
        log.info('microphone "%s": %d Hz, %d channel(s), device period %d frames',
                 device, sample_rate, channels, self._device_period)
        self.processing = None if processing is None or not processing.any else \
            AudioProcessing(processing, sample_rate, self.samples_per_frame, echo_reference)

    @classmethod
    def settings(cls, config: Config) -> dict[str, Any]:
        return {"device": config.audio.capture_device,
                "processing": ProcessingOptions.from_config(config)}

    @property
    def error(self) -> str | None:
        """Why the device failed, if it did (set by the capture thread)."""
        return self._periods.error

    @property
    def dropped_periods(self) -> int:
        """Captured periods thrown away to keep latency bounded."""
        return self._periods.dropped

    # -- the track ----------------------------------------------------------------------

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._thread is None:
            await self._start_capture()
        slot = await self._clock.next_slot()
        if self.readyState != "live":
            raise MediaStreamError
        try:
            data = self._take()
        except HandoffClosed:  # the device failed, and what it captured has been sent
            self.stop()
            raise MediaStreamError from None
        if data is None:
            data = self._silence
            self.underruns += 1
        samples = np.frombuffer(data, dtype=np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout=self._layout)
        frame.sample_rate = self.sample_rate
        frame.pts = slot * self.samples_per_frame
        frame.time_base = self._time_base
        self.frames += 1
        return frame

    def stop(self) -> None:
        super().stop()
        self._stopping.set()
        if self._thread is None and self._pcm is not None:
            self._pcm.close()  # never started: no thread owns it
            self._pcm = None

    def stats(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "clocked": self.clocked,
            "frames": self.frames,
            "underruns": self.underruns,
            "dropped_periods": self.dropped_periods,
            "overruns": self.overruns,
            "error": self.error,
            "processing": self.processing.stats() if self.processing is not None else None,
        }

    # -- the asyncio side of the hand-over ----------------------------------------------

    async def _start_capture(self) -> None:
        self._thread = threading.Thread(
            target=self._capture, name=f"alsa capture {self.device}", daemon=True
        )
        self._thread.start()
        # Start the stream clock with the device's first period, so the first frames are
        # audio, not silence; a device that never delivers gets silence after the timeout.
        try:
            await asyncio.wait_for(self._periods.wait(), FIRST_PERIOD_TIMEOUT_S)
        except TimeoutError:
            log.warning('microphone "%s": no audio in %.0f ms; sending silence until it comes',
                        self.device, FIRST_PERIOD_TIMEOUT_S * 1000)
            return
        if self.clocked:
            # A card delivers each period when it is complete, in step with our slots: start
            # half a period later, so a period that comes a little late is not an underrun.
            await asyncio.sleep(self.samples_per_frame / self.sample_rate / 2)

    def _take(self) -> bytes | None:
        """The oldest captured period, after dropping those that would leave more than
        MAX_WAITING_PERIODS waiting; None if nothing was captured."""
        self._periods.clear(keep=MAX_WAITING_PERIODS + 1)
        return self._periods.get_nowait()

    # -- the capture thread -------------------------------------------------------------

    def _capture(self) -> None:
        pcm = self._pcm
        assert pcm is not None
        pending = bytearray()
        pacer: _WallClockPacer | None = None
        slow_in_a_row = 0
        error = None
        if self.processing is not None:
            self.processing.start()
        try:
            while not self._stopping.is_set():
                before = time.monotonic()
                length, data = pcm.read()
                if self.clocked is None:
                    # A card blocks for about a period at each read; a plugin returns at once.
                    # A few slow reads in a row: one can be a CPU quota freezing the thread.
                    took = time.monotonic() - before
                    slow_in_a_row = slow_in_a_row + 1 if (
                        took >= self._device_period / self.sample_rate / 2) else 0
                    if slow_in_a_row in (0, CLOCKED_AFTER_SLOW_WRITES):
                        self.clocked = slow_in_a_row > 0
                        log.info('microphone "%s" is %s', self.device,
                                 _describe_clock(self.clocked))
                if self.clocked is False and pacer is None:
                    # One period of lead: a frame is always waiting when recv() wants it.
                    pacer = _WallClockPacer(self.sample_rate, lead_frames=self._device_period)
                if length < 0:
                    self.overruns += 1  # -EPIPE; pyalsaaudio has already re-prepared the PCM
                elif length:
                    pending += data
                    while len(pending) >= self._frame_bytes:
                        period = bytes(pending[: self._frame_bytes])
                        del pending[: self._frame_bytes]
                        if self.processing is not None:
                            period = self.processing.process(period)
                        self._periods.put(period)
                if pacer is not None:
                    # A read that returned nothing still counts a period, so this never spins.
                    pacer.advance(length if length > 0 else self._device_period)
        except alsaaudio.ALSAAudioError as exc:
            error = str(exc)
            log.error('microphone "%s" failed: %s; its track ends, the call goes on',
                      self.device, exc)
        finally:
            pcm.close()
            self._pcm = None
            self._periods.close(error)


class AlsaSpeaker(MeasuringSink, ConfiguredBackend):
    """Plays the remote audio track on an ALSA playback device, measuring it like every sink.

    The drain resamples each frame to `sample_rate`, `channels`, s16 and appends it to a
    playout buffer; the playback thread writes it to the device a period at a time. The
    buffer absorbs network jitter: playing starts (and, after running dry, restarts) once it
    holds `buffer_ms`; it never grows beyond `max_buffer_ms`: audio beyond that is dropped
    (back to `buffer_ms`, one cut rather than many). While it has nothing to play, the
    thread plays silence, so a card never stops. The device is opened by `start()`, which
    raises AlsaDeviceError; a device that fails later is logged and the track is still
    drained (the call goes on without sound). One remote audio track at a time.
    `echo_reference`: where every period written goes, for the microphone's echo canceller.
    """

    takes_echo_reference = True  # opening hands it the kiosk's EchoReference

    def __init__(
        self,
        device: str = "default",
        sample_rate: int = 48000,
        channels: int = 1,
        buffer_ms: int = 60,
        max_buffer_ms: int = 200,
        period_ms: int = 20,
        clocked: bool | None = None,
        echo_reference: EchoReference | None = None,
    ) -> None:
        super().__init__()
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, not {channels}")
        if not 0 < buffer_ms < max_buffer_ms:
            raise ValueError(f"the playout buffer of {buffer_ms} ms must be positive and "
                             f"below its maximum of {max_buffer_ms} ms")
        self.device, self.sample_rate, self.channels = device, sample_rate, channels
        self.buffer_ms, self.max_buffer_ms, self.period_ms = buffer_ms, max_buffer_ms, period_ms
        self._layout = "mono" if channels == 1 else "stereo"
        self._sample_bytes = channels * BYTES_PER_SAMPLE
        self._target_bytes = sample_rate * buffer_ms // 1000 * self._sample_bytes
        self._max_bytes = sample_rate * max_buffer_ms // 1000 * self._sample_bytes
        self._resampler = self._new_resampler()
        self._convert_failed = False
        self._playout = bytearray()
        self._playing = False  # False while (re)filling to buffer_ms
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._clocked_setting = clocked
        self.clocked = clocked
        self.echo_reference = echo_reference
        self.device_error: str | None = None
        self.played_periods = 0  # periods written with audio in them
        self.silent_periods = 0  # periods of silence written (before the start, refilling)
        self.playout_underruns = 0  # times the buffer ran dry while playing
        self.dropped_samples = 0  # samples cut because the buffer was over max_buffer_ms
        self.playout_drops = 0  # times that happened
        self.device_xruns = 0  # the card ran dry itself (the thread was late)

    @classmethod
    def settings(cls, config: Config) -> dict[str, Any]:
        audio = config.audio
        return {"device": audio.playback_device, "buffer_ms": audio.playout_buffer_ms,
                "max_buffer_ms": audio.max_playout_ms}

    # -- the sink contract --------------------------------------------------------------

    async def start(self) -> None:
        if self._thread is None:
            period_frames = self.sample_rate * self.period_ms // 1000
            pcm, info = open_pcm("playback", self.device, self.sample_rate, self.channels,
                                 period_frames, PLAYBACK_DEVICE_PERIODS)
            log.info('speaker "%s": %d Hz, %d channel(s), device period %d frames, buffer %d; '
                     "playout %d ms (at most %d)", self.device, self.sample_rate, self.channels,
                     info["period_size"], info["buffer_size"], self.buffer_ms,
                     self.max_buffer_ms)
            self._stopping.clear()
            self.clocked = self._clocked_setting
            self._thread = threading.Thread(
                target=self._play, args=(pcm, int(info["period_size"]), int(info["buffer_size"])),
                name=f"alsa playback {self.device}", daemon=True,
            )
            self._thread.start()
        await super().start()

    async def stop(self) -> None:
        await super().stop()
        thread, self._thread = self._thread, None
        self._stopping.set()
        if thread is not None:
            # A write on a card returns within a period; don't block the loop meanwhile.
            await asyncio.to_thread(thread.join, 2.0)
            if thread.is_alive():
                log.warning('speaker "%s": the playback thread did not stop', self.device)
        with self._lock:
            self._playout.clear()
            self._playing = False
        self._resampler = self._new_resampler()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            buffered = len(self._playout)
        return {
            **super().stats(),
            "playout_buffer_ms": round(buffered / self._sample_bytes * 1000 / self.sample_rate),
            "played_periods": self.played_periods,
            "silent_periods": self.silent_periods,
            "playout_underruns": self.playout_underruns,
            "playout_drops": self.playout_drops,
            "dropped_ms": round(self.dropped_samples * 1000 / self.sample_rate),
            "device_xruns": self.device_xruns,
            "device_clocked": self.clocked,
            "device_error": self.device_error,
        }

    # -- the drain side -----------------------------------------------------------------

    def _new_resampler(self) -> av.AudioResampler:
        return av.AudioResampler(format="s16", layout=self._layout, rate=self.sample_rate)

    def _on_audio(self, frame: av.AudioFrame) -> None:
        super()._on_audio(frame)
        try:
            try:
                converted = self._resampler.resample(frame)
            except ValueError:
                # The remote changed its format mid-stream: a resampler for the new one.
                self._resampler = self._new_resampler()
                converted = self._resampler.resample(frame)
            for out in converted:
                self._append(out.to_ndarray().tobytes())
        except Exception:
            # The drain must go on whatever happens here (aiortc's queue would grow): say it once.
            if not self._convert_failed:
                log.exception('speaker "%s": cannot play a received frame; still draining',
                              self.device)
                self._convert_failed = True

    def _append(self, data: bytes) -> None:
        with self._lock:
            self._playout += data
            if len(self._playout) > self._max_bytes:
                # Arriving faster than the card plays (a burst, or clocks apart): cut the oldest
                # audio back to the target in one go, rather than a little on every frame.
                excess = len(self._playout) - self._target_bytes
                excess -= excess % self._sample_bytes
                del self._playout[:excess]
                self.dropped_samples += excess // self._sample_bytes
                self.playout_drops += 1

    def _next_period(self, period_bytes: int) -> bytes | None:
        """The next period to play, or None for silence (not started, or refilling)."""
        with self._lock:
            if not self._playing:
                if len(self._playout) < max(self._target_bytes, period_bytes):
                    return None
                self._playing = True
            if len(self._playout) >= period_bytes:
                chunk = bytes(self._playout[:period_bytes])
                del self._playout[:period_bytes]
                return chunk
            # Ran dry: play what is left, then silence until the buffer has refilled.
            self.playout_underruns += 1
            self._playing = False
            chunk = bytes(self._playout).ljust(period_bytes, b"\0")
            self._playout.clear()
            return chunk

    # -- the playback thread ------------------------------------------------------------

    def _queued(self, pcm: Any, buffer_frames: int) -> int:
        """Frames in the device's buffer after a write (the period just written included):
        the last sample written is heard that long from now. pyalsaaudio 0.11 has avail()
        (free frames) but no delay(); a device without it: a full buffer on a card (and
        while it is not known yet), nothing on a plugin that takes everything at once."""
        try:
            return max(0, buffer_frames - int(pcm.avail()))
        except (AttributeError, alsaaudio.ALSAAudioError):
            return 0 if self.clocked is False else buffer_frames

    def _play(self, pcm: Any, period_frames: int, buffer_frames: int) -> None:
        period_bytes = period_frames * self._sample_bytes
        silence = bytes(period_bytes)
        period_s = period_frames / self.sample_rate
        pacer: _WallClockPacer | None = None
        if self.clocked is False:
            pacer = _WallClockPacer(self.sample_rate)
        probe_start, probed_frames, slow_in_a_row = time.monotonic(), 0, 0
        try:
            while not self._stopping.is_set():
                chunk = self._next_period(period_bytes) if self.clocked is not None else None
                if chunk is None:
                    self.silent_periods += 1
                else:
                    self.played_periods += 1
                before = time.monotonic()
                written = pcm.write(chunk or silence)
                if written < 0:
                    # -EPIPE: the card ran dry; pyalsaaudio has re-prepared it. Write again.
                    self.device_xruns += 1
                    pcm.write(chunk or silence)
                if self.echo_reference is not None:
                    self.echo_reference.played(chunk or silence, self.channels,
                                               self._queued(pcm, buffer_frames),
                                               self.sample_rate)
                if self.clocked is None:
                    # Fill the card's buffer with silence: once full, a card blocks for about a
                    # period at every write; a plugin that takes a buffer and more without
                    # blocking has no clock. One slow write is not enough: under a CPU quota the
                    # kernel may freeze the thread in the middle of any write.
                    probed_frames += period_frames
                    slow = time.monotonic() - before >= period_s / 2
                    slow_in_a_row = slow_in_a_row + 1 if slow else 0
                    if slow_in_a_row >= CLOCKED_AFTER_SLOW_WRITES:
                        self.clocked = True
                    elif probed_frames > buffer_frames + UNCLOCKED_AFTER_PERIODS * period_frames:
                        self.clocked = False
                        pacer = _WallClockPacer(self.sample_rate)
                        pacer.start, pacer.frames = probe_start, probed_frames  # already out
                    if self.clocked is not None:
                        log.info('speaker "%s" is %s', self.device, _describe_clock(self.clocked))
                elif pacer is not None:
                    pacer.advance(period_frames)
        except alsaaudio.ALSAAudioError as exc:
            self.device_error = str(exc)
            log.error('speaker "%s" failed: %s; the call goes on without sound',
                      self.device, exc)
        finally:
            pcm.close()
