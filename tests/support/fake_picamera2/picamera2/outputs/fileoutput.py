"""Writes frames to a file (as picamera2.outputs.fileoutput, without the socket cases)."""

import io
from pathlib import Path

from .output import Output


class FileOutput(Output):
    def __init__(self, file=None, pts=None, split=None):
        super().__init__(pts=pts)
        self.dead = False
        self._needs_close = False
        self.fileoutput = file

    @property
    def fileoutput(self):
        return self._fileoutput

    @fileoutput.setter
    def fileoutput(self, file):
        if file is None:
            self._fileoutput = None
        elif isinstance(file, (str, Path)):
            self._fileoutput = open(file, "wb")
            self._needs_close = True
        elif isinstance(file, io.BufferedIOBase):
            self._fileoutput = file
        else:
            raise RuntimeError("Must pass io.BufferedIOBase")

    def outputframe(self, frame, keyframe=True, timestamp=None, packet=None, audio=False):
        if audio:
            raise RuntimeError("Output does not support audio")
        if self._fileoutput is not None and self.recording:
            self._fileoutput.write(frame)
            self._fileoutput.flush()
            self.outputtimestamp(timestamp)

    def stop(self):
        super().stop()
        if self._needs_close and self._fileoutput is not None:
            self._fileoutput.close()
            self._fileoutput = None
