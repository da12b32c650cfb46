"""H264Encoder with the real constructor and force_key_frame(); libx264 stands in for the
VideoCore encoder behind /dev/video11."""

from __future__ import annotations

import fractions
import queue
import threading

import av

from .. import fake
from .encoder import Encoder, Quality

PROFILES = ("baseline", "constrained baseline", "main", "high")
DRIVER_DEFAULT_IPERIOD = 60  # what bcm2835-codec uses when iperiod is None
BUFFERS = 16  # the V4L2 encoder's output buffers: the camera thread blocks when all are queued


class H264Encoder(Encoder):
    def __init__(self, bitrate=None, repeat=True, iperiod=None, framerate=None,
                 enable_sps_framerate=False, qp=None, profile=None):
        super().__init__()
        self.bitrate = bitrate
        self.iperiod = iperiod
        self.repeat = repeat
        self.qp = qp
        self.profile = profile
        self.framerate = framerate
        self._enable_framerate = enable_sps_framerate
        self._key_frames_requested = 0
        self._key_frames_generated = 0
        self.vd = None  # the real one's /dev/video11 file; the fake has none
        # records for tests (not in picamera2)
        self.bitrates_applied: list[int] = []
        self.keyframes_output = 0
        self.frames_output = 0
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        fake.encoders.append(self)

    def _setup(self, quality):
        if quality is not None or (self.bitrate is None and self.qp is None):
            quality = Quality.MEDIUM if quality is None else quality
            table = {Quality.VERY_LOW: 2, Quality.LOW: 4, Quality.MEDIUM: 6, Quality.HIGH: 9,
                     Quality.VERY_HIGH: 15}
            complexity = self.width * self.height * (self.framerate or 30)
            self.bitrate = int(table[quality] * 1000000 * complexity / (1920 * 1080 * 30))

    def _start(self):
        if self.profile:
            if not isinstance(self.profile, str):
                raise RuntimeError("Profile should be a string value")
            if self.profile.lower() not in PROFILES:
                raise RuntimeError("Profile " + self.profile + " not recognised")
        if self._format != "YUV420":
            raise RuntimeError("the fake encoder takes YUV420 only")
        codec = av.CodecContext.create("libx264", "w")
        codec.width, codec.height = self.width, self.height
        codec.pix_fmt = "yuv420p"
        codec.time_base = fractions.Fraction(1, 1000000)
        codec.framerate = fractions.Fraction(round(self.framerate or 30))
        codec.bit_rate = self.bitrate
        codec.gop_size = self.iperiod or DRIVER_DEFAULT_IPERIOD
        codec.profile = "Baseline"
        # Annex-B with SPS/PPS in front of every IDR (no global header), as with repeat=True.
        codec.options = {"preset": "ultrafast", "tune": "zerolatency", "level": "31",
                         "forced-idr": "1", "x264-params": "scenecut=0"}
        if self.qp is not None:
            codec.qmin = codec.qmax = self.qp
        codec.open()
        self._codec = codec
        self._applied_bitrate = self.bitrate
        self.bitrates_applied.append(self.bitrate)
        self._queue = queue.Queue(maxsize=BUFFERS)
        self._thread = threading.Thread(target=self._poll, name="fake h264 encoder", daemon=True)
        self._thread.start()

    def _stop(self):
        assert self._queue is not None and self._thread is not None
        self._queue.put(None)
        self._thread.join()
        self._thread = None

    def _encode(self, stream, request):
        if self._queue is None:
            return
        timestamp_us = self._timestamp(request)
        self._queue.put((request.make_array(stream), timestamp_us))

    def _poll(self):
        """The encoder's output side: encode and hand each access unit to the outputs."""
        assert self._queue is not None
        while (item := self._queue.get()) is not None:
            array, timestamp_us = item
            if self.bitrate != self._applied_bitrate:
                # Like V4L2_CID_MPEG_VIDEO_BITRATE on the real device: from the next frame.
                self._codec.bit_rate = self.bitrate
                self._applied_bitrate = self.bitrate
                self.bitrates_applied.append(self.bitrate)
            frame = av.VideoFrame.from_numpy_buffer(array, format="yuv420p", width=self.width)
            frame.pts = timestamp_us
            frame.time_base = self._codec.time_base
            if self._key_frames_requested > self._key_frames_generated:
                self._key_frames_generated += 1
                frame.pict_type = av.video.frame.PictureType.I
            for packet in self._codec.encode(frame):
                self._output_packet(packet)
        for packet in self._codec.encode(None):
            self._output_packet(packet)

    def _output_packet(self, packet):
        self.frames_output += 1
        self.keyframes_output += packet.is_keyframe
        self.outputframe(bytes(packet), packet.is_keyframe, packet.pts)

    def force_key_frame(self):
        """Force a key frame to be encoded in the video stream as soon as possible."""
        self._key_frames_requested += 1
