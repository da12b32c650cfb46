"""Hardware profiles: the video settings each board can carry, on the web app's own tables
(1280x720@30 where the hardware can, 640x480@24 on constrained boards; audio is 48 kHz on all).

A profile fills in only the keys a config leaves at their shipped default: an admin's explicit
`video.fps = 15` wins over any profile. Pure: the board's model text is a parameter.
"""

from __future__ import annotations

from typing import Any

PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    # Pi 4 (and 3, CM4, Pi 400): the VideoCore hardware H.264 encoder carries 720p30.
    # Its software VP8 (for a caller without H.264) at 720p30 needs the fastest settings.
    "pi4": {"video": {"width": 1280, "height": 720, "fps": 30, "encoder": "hardware",
                      "encoder_speed": "fast"},
            "rtc": {"video_codecs": ["H264", "VP8"]}},
    # Zero 2 W: the same encoder, but four slow cores and 512 MB: the constrained table.
    "zero2w": {"video": {"width": 640, "height": 480, "fps": 24, "encoder": "hardware",
                         "encoder_speed": "fast"},
               "rtc": {"video_codecs": ["H264", "VP8"]}},
    # Pi 5 has no hardware H.264 encoder: software encoding at the constrained settings.
    "pi5": {"video": {"width": 640, "height": 480, "fps": 24, "encoder": "software",
                      "encoder_speed": "fast"},
            "rtc": {"video_codecs": ["VP8", "H264"]}},
    # Any other machine (a laptop, a test rig): software encoding, the desktop table.
    "desktop": {"video": {"width": 1280, "height": 720, "fps": 30, "encoder": "software",
                          "encoder_speed": "fast"},
                "rtc": {"video_codecs": ["VP8", "H264"]}},
}

BOARD_MODEL_FILE = "/proc/device-tree/model"


def profile_for_board(model: str) -> str:
    """The profile for a /proc/device-tree/model text, e.g. "Raspberry Pi 4 Model B Rev 1.4"."""
    model = model.strip("\x00 \n")
    if "Raspberry Pi" not in model:
        return "desktop"
    if "Raspberry Pi 5" in model or "Compute Module 5" in model:
        return "pi5"
    if "Zero" in model or "Raspberry Pi 2" in model or "Model A" in model:
        return "zero2w"
    return "pi4"
