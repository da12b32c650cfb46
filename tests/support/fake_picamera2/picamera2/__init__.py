"""A fake picamera2 for tests: the real API, a synthetic sensor, libx264 as the encoder."""

from .picamera2 import Picamera2, Preview
from .request import CompletedRequest, MappedArray

__all__ = ["CompletedRequest", "MappedArray", "Picamera2", "Preview"]
