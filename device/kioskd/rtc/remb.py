"""Asking the caller for less video: a ceiling on the bitrate the kiosk's receiver reports.

aiortc's video receiver estimates the bandwidth from the packets' send times and reports it to
the sender (REMB, RTCP feedback a browser obeys: it lowers its bitrate, then its resolution or
frame rate). While the kiosk's CPU is pressed (media/shedding.py), the report is capped, so
the caller sends video that is cheaper to receive and decode. aiortc has no API for it: the
estimator's `add`, which returns each report, is wrapped on the receiver.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_ESTIMATOR_ATTRIBUTE = "_RTCRtpReceiver__remote_bitrate_estimator"


def limit_remb(receiver: Any, ceiling_bps: Callable[[], int | None]) -> bool:
    """Cap the bitrate `receiver` reports to `ceiling_bps()` (None: no cap) at each report.
    False, and a warning, if this aiortc keeps no estimator there."""
    estimator = getattr(receiver, _ESTIMATOR_ATTRIBUTE, None)
    if estimator is None or not hasattr(estimator, "add"):
        log.warning("this aiortc has no %s: the kiosk cannot ask a caller for less video",
                    _ESTIMATOR_ATTRIBUTE)
        return False
    estimate = estimator.add

    def add(**packet: Any) -> tuple[int, list[int]] | None:
        report = estimate(**packet)
        ceiling = ceiling_bps()
        if report is None or ceiling is None:
            return report
        bitrate, ssrcs = report
        return min(bitrate, ceiling), ssrcs

    estimator.add = add
    return True
