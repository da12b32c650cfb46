"""A private X server (Xvfb) for tests and benchmarks that render into a real window."""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

from tests.support.processes import stop_process


@contextlib.contextmanager
def running_xvfb(width: int = 1280, height: int = 720, timeout: float = 10.0,
                 fbdir: Path | None = None) -> Iterator[str]:
    """Start Xvfb on a free display number; yields DISPLAY (e.g. ":5"). With `fbdir`, the
    screen's memory is also a file there (`Xvfb_screen0`, XWD): what a monitor would show."""
    if shutil.which("Xvfb") is None:
        raise FileNotFoundError("Xvfb is not installed (apt-get install xvfb)")
    read_end, write_end = os.pipe()
    # -displayfd: Xvfb picks a free display and writes its number once it accepts clients,
    # so there is nothing to guess and nothing to sleep for.
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{width}x{height}x24",
         "-nolisten", "tcp", *(["-fbdir", str(fbdir)] if fbdir is not None else [])],
        pass_fds=(write_end,),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], timeout)
        number = os.read(read_end, 16).decode().strip() if ready else ""
        if not number:
            raise RuntimeError("Xvfb did not start")
        yield f":{number}"
    finally:
        os.close(read_end)
        stop_process(proc)
