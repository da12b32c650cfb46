"""Output frames from encoder (as picamera2.outputs.output)."""


class Output:
    """Handles output functionality of encoders"""

    def __init__(self, pts=None):
        self.recording = False
        self.ptsoutput = pts
        self.needs_pacing = False
        self.needs_add_stream = False

    def start(self):
        self.recording = True

    def stop(self):
        self.recording = False

    def outputframe(self, frame, keyframe=True, timestamp=None, packet=None, audio=False):
        """Outputs frame from encoder: bytes, whether a keyframe, timestamp in microseconds."""

    def outputtimestamp(self, timestamp):
        if self.ptsoutput is not None and timestamp is not None:
            print(f"{timestamp // 1000}.{timestamp % 1000:03}", file=self.ptsoutput, flush=True)

    @property
    def ptsoutput(self):
        return self._ptsoutput

    @ptsoutput.setter
    def ptsoutput(self, file):
        if file is None:
            self._ptsoutput = None
        elif isinstance(file, str):
            self._ptsoutput = open(file, "w")
        else:
            self._ptsoutput = file

    def _add_stream(self, encoder_stream, *args, **kwargs):
        pass
