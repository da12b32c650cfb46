"""The ALSA audio loop without a sound card: a 1 kHz tone read by AlsaMicrophone from ALSA's
file plugin, sent as Opus through two in-process peer connections over loopback, played by
AlsaSpeaker into another file plugin. Both are opened as the daemon opens them: from a config
with audio.source and audio.sink "alsa", through kioskd.media.opening. Reports how the far end's recording came out: the tone's
frequency error, its level, the longest silence inside it, and the back ends' counters.

Prints one JSON line. Runs inside a private loopback-only network namespace (needs root).

    .venv/bin/python -m bench.audio_alsa [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import tempfile
from pathlib import Path

from tests.support import netns
from tests.support.alsa_file_plugin import (
    analyse,
    mic_to_speaker_call,
    read_raw,
    write_asoundrc,
    write_tone,
)

TONE_HZ = 1000.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    netns.run_module_inside("bench.audio_alsa")
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="kioskd-alsa-") as directory:
        tone, out = Path(directory) / "tone.raw", Path(directory) / "out.raw"
        # Longer than the run: past its end the file plugin returns garbage, not silence.
        write_tone(tone, TONE_HZ, seconds=args.seconds + 20, amplitude=0.5)
        os.environ["ALSA_CONFIG_PATH"] = str(write_asoundrc(Path(directory), infile=tone,
                                                            outfile=out))
        stats = asyncio.run(mic_to_speaker_call(args.seconds))
        result = analyse(read_raw(out), TONE_HZ)
    microphone, speaker = stats["microphone"], stats["speaker"]
    assert isinstance(microphone, dict) and isinstance(speaker, dict)
    print(json.dumps({
        "bench": "audio_alsa",
        "path": "file plugin -> AlsaMicrophone -> Opus -> loopback -> AlsaSpeaker -> file plugin",
        "seconds": args.seconds,
        "tone_hz": TONE_HZ,
        "recorded_s": result["seconds"],
        "frequency_hz": result["frequency_hz"],
        "frequency_error_pct": result["frequency_error_pct"],
        "level_dbfs_in": -9.03,
        "level_dbfs_out": result["level_dbfs"],
        "longest_gap_ms": result["longest_gap_ms"],
        "microphone": {k: microphone[k] for k in ("frames", "underruns", "dropped_periods",
                                                   "overruns")},
        "speaker": {k: speaker[k] for k in ("audio_frames", "played_periods", "silent_periods",
                                             "playout_underruns", "playout_drops", "dropped_ms",
                                             "playout_buffer_ms")},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }))


if __name__ == "__main__":
    main()
