"""The microphone's processing stage (echo cancellation, noise suppression, high-pass, gain)
on the made-up echo of tests/support/echo_signals.py: how much echo it removes, what it costs.

A seeded speech-like far end plays through a synthetic room (RT60 0.3 s) and comes back to
the microphone 0, 60 and 200 ms after the speaker's device plays it; the kiosk's talker joins
in the last third. The stage is fed as the ALSA back ends feed it, 20 ms periods, the speaker's
into the EchoReference and the microphone's through `AudioProcessing.process`. Reported:

- ERLE over the far-end-only part once converged (from 3 s), per delay, with the kiosk's
  defaults (all four on) and with echo cancellation alone; the automatic gain is taken out;
  and the stage's own estimate (what status shows) before the double talk and at its end;
- the near end's loss in double talk (its power over the output's while it talks);
- CPU: the capture thread's CPU time (time.thread_time) per `process()` call of a 20 ms
  period (p50, p99; the library's work plus the stage's own: the reference, the ERLE meter),
  the library alone per 10 ms frame, and the stage's CPU per second of call;
- the added latency: the stage's own buffering (none: each period comes back from the call
  that takes it) and the library's, found by cross-correlating its input and output;
- a Pi 4 estimate: this machine's CPU per call second times PI4_FACTOR (see below).

Prints one JSON line. No network, no devices: it needs only pywebrtc-audio.

    .venv/bin/python -m bench.echo [--seconds 12] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from kioskd.media.echo_reference import EchoReference
from kioskd.media.processing import AudioProcessing, ProcessingOptions, library_version
from tests.support import echo_signals as signals

RATE, PERIOD = signals.RATE, signals.PERIOD
DELAYS_MS = (0, 60, 200)
CONVERGED_FROM_S = 3.0
CONFIGS = {
    "defaults": ProcessingOptions(),
    "echo_only": ProcessingOptions(echo_cancellation=True, noise_suppression=False,
                                   high_pass_filter=True, auto_gain=False),
}
# A Pi 4's Cortex-A72 core (1.5-1.8 GHz) against one core of this machine (AMD EPYC, Zen 3,
# virtual): public single-core scores put it 4 to 6 times slower; the library's aarch64 wheel
# has the same 128-bit SIMD paths (NEON) as its x86_64 one (SSE2). An estimate until measured
# on a Pi.
PI4_FACTOR, PI4_RANGE = 5.0, (4.0, 6.0)


def percentiles(values: np.ndarray) -> dict[str, float]:
    micros = values * 1e6
    return {"p50_us": round(float(np.percentile(micros, 50)), 1),
            "p99_us": round(float(np.percentile(micros, 99)), 1)}


def echo_runs(seconds: float, seed: int) -> tuple[dict, np.ndarray]:
    """ERLE and near-end loss per config and delay; the defaults' CPU per period."""
    results: dict = {}
    cpu = []
    for name, options in CONFIGS.items():
        results[name] = {}
        for delay in DELAYS_MS:
            scene = signals.scenario(delay, seconds=seconds, seed=seed)
            reference = EchoReference(RATE)
            stage = AudioProcessing(options, RATE, PERIOD, reference)
            run = signals.run_stage(stage, reference, scene.mic, scene.far,
                                    stats_at_sample=scene.double_talk_from)
            stats = stage.stats()
            before = run.stats_at or {}
            results[name][f"{delay}ms"] = {
                "erle_db": round(signals.erle_db(scene.mic, run, round(CONVERGED_FROM_S * RATE),
                                                 scene.double_talk_from), 1),
                "near_loss_db": round(signals.near_loss_db(scene, run), 1),
                # What status would show: just before the double talk, and at its end.
                "stage_erle_estimate_db": [before.get("erle_db"), stats["erle_db"]],
                "reference_realignments": stats["reference_realignments"],
            }
            if name == "defaults":
                cpu.append(run.cpu_s[50:])  # after the first second (set-up, first touches)
    return results, np.concatenate(cpu)


def library_per_frame(seconds: float, seed: int) -> np.ndarray:
    """The library alone (the kiosk's defaults), 10 ms frames: thread CPU time per frame."""
    import pywebrtc_audio

    scene = signals.scenario(60, seconds=seconds, seed=seed)
    processor = pywebrtc_audio.AudioProcessor(
        sample_rate=RATE, echo_cancellation=True, noise_suppression=True,
        high_pass_filter=True, auto_gain_control=True)
    frame = RATE // 100
    times = []
    for start in range(0, len(scene.mic) - frame + 1, frame):
        near, far = scene.mic[start:start + frame], scene.far[start:start + frame]
        before = time.thread_time()
        processor.process(near, far)
        times.append(time.thread_time() - before)
    return np.array(times[100:])


def added_latency_ms(options: ProcessingOptions, seed: int) -> float:
    """The library's own delay: the lag of the output behind the input (the near end
    talking alone, the speaker silent), by cross-correlation."""
    talk = np.round(signals.speech_like(6, seed=seed + 300, level_dbfs=-26)).astype(np.int16)
    stage = AudioProcessing(options, RATE, PERIOD, EchoReference(RATE))
    stage.start()
    out = np.concatenate([np.frombuffer(stage.process(talk[k:k + PERIOD].tobytes()), np.int16)
                          for k in range(0, len(talk) - PERIOD + 1, PERIOD)])
    a = talk[RATE:len(out)].astype(np.float64)  # after the first second
    b = out[RATE:].astype(np.float64)
    size = 2 * len(a)
    correlation = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)
    lag = int(np.argmax(correlation[:RATE // 10]))  # 0 to 100 ms later
    return round(lag * 1000 / RATE, 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if library_version() is None:
        raise SystemExit("bench.echo: pywebrtc-audio is not installed (the alsa extra)")
    echo, stage_cpu = echo_runs(args.seconds, args.seed)
    per_frame = library_per_frame(args.seconds, args.seed)
    cpu_per_call_s = float(stage_cpu.sum() / (len(stage_cpu) * PERIOD / RATE))
    print(json.dumps({
        "bench": "echo",
        "library": library_version(),
        "signal": {"seconds": args.seconds, "seed": args.seed, "rt60_s": 0.3,
                   "far_dbfs": signals.TALK_DBFS, "echo_gain_db": signals.ECHO_GAIN_DB,
                   "near_dbfs": signals.NEAR_DBFS, "erle_from_s": CONVERGED_FROM_S,
                   "double_talk_from_s": round(args.seconds * 2 / 3, 2)},
        "echo": echo,
        "cpu": {
            "stage_per_20ms_period": percentiles(stage_cpu),
            "library_per_10ms_frame": percentiles(per_frame),
            "stage_cpu_ms_per_call_second": round(cpu_per_call_s * 1000, 2),
            "pi4_estimate_cpu_ms_per_call_second": {
                "estimate": round(cpu_per_call_s * 1000 * PI4_FACTOR, 1),
                "range": [round(cpu_per_call_s * 1000 * f, 1) for f in PI4_RANGE],
                "factor": PI4_FACTOR,
            },
        },
        "added_latency_ms": {
            "stage_buffering": 0.0,  # each period is returned by the call that takes it
            "library_defaults": added_latency_ms(CONFIGS["defaults"], args.seed),
            "library_echo_only": added_latency_ms(CONFIGS["echo_only"], args.seed),
        },
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                   f"Python {platform.python_version()}",
    }))


if __name__ == "__main__":
    main()
