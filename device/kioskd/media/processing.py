"""The microphone's processing stage: echo cancellation, noise suppression, high-pass, gain.

Between the ALSA microphone and the outgoing track, WebRTC's audio processing module (AEC3,
its noise suppressor, AGC2 and high-pass filter; the pywebrtc-audio binding, see
docs/audio.md for why that one) cleans each captured period before it is sent. The echo
canceller is fed, beside each period, the samples the speaker actually wrote over the same
time (`EchoReference`), so the caller does not hear themselves from the kiosk's loudspeaker.

It runs on the microphone's capture thread (the library releases the GIL, and its instances
are not thread-safe: only that thread touches this one), 20 ms at a time as the device
delivers them, and adds no buffering of its own. When the far end is silent or absent (no
speaker, or it has not started), the canceller is fed silence as its reference: the same
path runs all the time, so a speaker that starts mid-call needs no switch-over, and the
canceller stays adapted across a pause. Without the library the stage passes the audio
through unchanged, and says so once in the log.

pywebrtc-audio does not expose AEC3's own statistics (its delay estimate, ERLE), so the
stage estimates ERLE itself (`ErleMeter`) and reports the delay hint it gives the canceller.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .echo_reference import EchoReference

if TYPE_CHECKING:
    from ..config import Config

log = logging.getLogger(__name__)

LIBRARY = "pywebrtc-audio"
LIBRARY_MODULE = "pywebrtc_audio"
_missing_said = False  # the missing library is said once per process, not once per call


@dataclass(frozen=True)
class ProcessingOptions:
    """Which parts of the stage run (the audio.* keys of the same names)."""

    echo_cancellation: bool = True
    noise_suppression: bool = True
    high_pass_filter: bool = True
    auto_gain: bool = True

    @classmethod
    def from_config(cls, config: Config) -> ProcessingOptions:
        audio = config.audio
        return cls(
            # Only a real speaker makes an echo to cancel.
            echo_cancellation=audio.echo_cancellation and audio.sink == "alsa",
            noise_suppression=audio.noise_suppression,
            high_pass_filter=audio.high_pass_filter,
            auto_gain=audio.auto_gain,
        )

    @property
    def any(self) -> bool:
        return (self.echo_cancellation or self.noise_suppression or self.high_pass_filter
                or self.auto_gain)

    def names(self) -> list[str]:
        return [name for name, on in (("echo cancellation", self.echo_cancellation),
                                      ("noise suppression", self.noise_suppression),
                                      ("high-pass filter", self.high_pass_filter),
                                      ("auto gain", self.auto_gain)) if on]


def _power(samples: np.ndarray) -> float:
    values = samples.astype(np.float64)
    return float(np.dot(values, values)) / max(1, len(values))


# A period counts for ERLE only when the far end plays above this (-50 dBFS) and the
# microphone hears something (-70 dBFS): the ratio of two noise floors means nothing.
FAR_ACTIVE_POWER = 32768.0 ** 2 * 10 ** (-50 / 10)
NEAR_FLOOR_POWER = 32768.0 ** 2 * 10 ** (-70 / 10)


class ErleMeter:
    """A running echo return loss enhancement: microphone power in over processed power out,
    summed over the periods of the last `window_s` in which the far end played, with the
    automatic gain taken out, so that it measures what the processing removed. While the
    kiosk's side talks too (double talk) it reads lower than the canceller's real ERLE: the
    near-end speech is in the output, as it should be."""

    def __init__(self, period_s: float, window_s: float = 2.0, settle_s: float = 0.5) -> None:
        # One entry per period, (0, 0) for those that do not count.
        self._powers: deque[tuple[float, float]] = deque(maxlen=round(window_s / period_s))
        self._settle = round(settle_s / period_s)

    def add(self, near: np.ndarray, out: np.ndarray, far: np.ndarray | None,
            gain_db: float) -> None:
        near_power = _power(near)
        if far is None or _power(far) < FAR_ACTIVE_POWER or near_power < NEAR_FLOOR_POWER:
            self._powers.append((0.0, 0.0))
            return
        self._powers.append((near_power, _power(out) / 10 ** (gain_db / 10)))

    @property
    def erle_db(self) -> float | None:
        """None until the far end played for `settle_s` of the window. Read from another
        thread: a copy of the window is summed."""
        counted = [p for p in list(self._powers) if p[0]]
        if len(counted) < self._settle:
            return None
        heard, through = sum(p[0] for p in counted), sum(p[1] for p in counted)
        return round(10 * math.log10(heard / max(through, 1.0)), 1)


def library_version() -> str | None:
    """"pywebrtc-audio 0.2.0", or None when it is not installed."""
    try:
        return f"{LIBRARY} {importlib.metadata.version(LIBRARY)}"
    except importlib.metadata.PackageNotFoundError:
        return None


def _new_processor(options: ProcessingOptions, sample_rate: int, delay_hint_ms: int) -> Any:
    """The library's processor, or None when it is not installed (said once)."""
    global _missing_said
    try:
        import pywebrtc_audio  # the library: imported only when a microphone needs it
    except ImportError as exc:
        if not _missing_said:
            _missing_said = True
            log.warning("microphone: %s is not installed (%s): its audio goes out unprocessed, "
                        "without %s; install the alsa extra: .venv/bin/pip install "
                        "-c constraints.txt '.[alsa]'", LIBRARY, exc, ", ".join(options.names()))
        return None
    return pywebrtc_audio.AudioProcessor(
        sample_rate=sample_rate, num_channels=1,
        echo_cancellation=options.echo_cancellation,
        noise_suppression=options.noise_suppression,
        high_pass_filter=options.high_pass_filter,
        auto_gain_control=options.auto_gain,
        stream_delay_ms=delay_hint_ms)


class AudioProcessing:
    """The stage for one microphone (one call): `start()` then `process(period)` for each
    captured period, on the capture thread. `reference`: where the speaker's samples come
    from; None (or options without echo cancellation) means no echo cancellation."""

    def __init__(self, options: ProcessingOptions, sample_rate: int, period_frames: int,
                 reference: EchoReference | None = None) -> None:
        if not options.echo_cancellation:
            reference = None
        elif reference is None:
            options = dataclasses.replace(options, echo_cancellation=False)
        self.options, self.sample_rate, self.period_frames = options, sample_rate, period_frames
        self.reference = reference
        self._silence = np.zeros(period_frames, dtype=np.int16)
        self._processor = _new_processor(options, sample_rate, 0) if options.any else None
        self.library = library_version() if self._processor is not None else None
        self.error: str | None = None  # why it fell back to passing the audio through
        self._erle = ErleMeter(period_frames / sample_rate)
        self._delay_hint_ms = 0
        self.far_end_playing = False
        self.gain_db = 0.0  # the automatic gain applied to the last period
        self.frames = 0  # periods processed
        self.cpu_s = 0.0  # the capture thread's CPU time spent in the library

    @property
    def processing(self) -> bool:
        """True while the audio goes through the library (not passed through)."""
        return self._processor is not None

    def start(self) -> None:
        """The capture thread starts: the reference is read from now on."""
        if self.reference is not None:
            self.reference.start_reading()
        if self.processing:
            log.info("microphone: %s (%s)", ", ".join(self.options.names()), self.library)

    def process(self, period: bytes) -> bytes:
        """One captured period (s16 mono, `period_frames` samples) processed; the same bytes
        when passing through."""
        if self._processor is None:
            return period
        near = np.frombuffer(period, dtype=np.int16)
        far = None
        if self.reference is not None:
            far = self.reference.take(len(near))
            self.far_end_playing = far is not None
            if far is None:
                far = self._silence if len(near) == self.period_frames else np.zeros_like(near)
            elif self.reference.delay_hint_ms != self._delay_hint_ms:
                self._delay_hint_ms = self.reference.delay_hint_ms
                self._processor.stream_delay_ms = self._delay_hint_ms
        before = time.thread_time()
        try:
            out = self._processor.process(near, far)
            gain_db = float(self._processor.gain_db) if self.options.auto_gain else 0.0
        except Exception as exc:  # a library failure must not cost the call its sound
            self.error = repr(exc)
            self._processor = None
            log.error("microphone: audio processing failed (%r); its audio goes out "
                      "unprocessed from now on", exc)
            return period
        self.cpu_s += time.thread_time() - before
        self.frames += 1
        if self.reference is not None:
            self._erle.add(near, out, far if self.far_end_playing else None, gain_db)
        self.gain_db = gain_db
        return bytes(out.tobytes())

    def stats(self) -> dict[str, Any]:
        """What status and metrics show: what runs, and how the echo canceller does."""
        echo = self.options.echo_cancellation and self.processing
        seconds = self.frames * self.period_frames / self.sample_rate
        reference = self.reference.stats() if self.reference is not None else {}
        return {
            "state": "processing" if self.processing else
                     ("pass-through" if self.options.any else "off"),
            "library": self.library,
            "error": self.error,
            "echo_cancellation": echo,
            # Cancelling now: enabled, and the speaker is playing into the reference.
            "echo_cancellation_active": echo and self.far_end_playing,
            "noise_suppression": self.options.noise_suppression and self.processing,
            "high_pass_filter": (self.options.high_pass_filter or echo) and self.processing,
            "auto_gain": self.options.auto_gain and self.processing,
            "auto_gain_db": round(self.gain_db, 1)
                            if self.options.auto_gain and self.processing else None,
            "erle_db": self._erle.erle_db if echo else None,  # estimated: see ErleMeter
            "delay_hint_ms": reference.get("delay_hint_ms") if echo else None,
            **{key: value for key, value in reference.items() if key != "delay_hint_ms"},
            "cpu_ms_per_s": round(self.cpu_s * 1000 / seconds, 2) if seconds else None,
        }
