"""Prometheus metrics: a tiny registry, kioskd's metrics on it, and a localhost HTTP endpoint.

Our own ~100 lines rather than prometheus_client: kioskd needs three metric types, one
process and no multiprocess mode, and aiohttp (already here) serves the text.
Text exposition format 0.0.4:
https://prometheus.io/docs/instrumenting/exposition_formats/

Everything runs on the event loop (updates and scrapes alike), so there are no locks.
Values that live elsewhere (the signaling reconnect count, the current call's frame counts) are
pulled at scrape time by collectors (`Registry.add_collector`) instead of being pushed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from aiohttp import web

from .call.events import Finished
from .call.states import State

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SETUP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0)
Labels = tuple[str, ...]


def _value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(value) if isinstance(value, int) else repr(float(value))


def _labels(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    def escape(text: str) -> str:
        return text.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")
    return "{" + ",".join(f'{n}="{escape(v)}"' for n, v in zip(names, values, strict=True)) + "}"


class Metric:
    kind = "untyped"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        self.name, self.help, self.labelnames = name, help, tuple(labelnames)
        self.values: dict[Labels, float] = {}

    def _key(self, labels: Mapping[str, Any]) -> Labels:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {tuple(labels)}")
        return tuple(str(labels[name]) for name in self.labelnames)

    def samples(self) -> Iterator[tuple[str, str, float]]:
        for key, value in sorted(self.values.items()):
            yield self.name, _labels(self.labelnames, key), value


class Counter(Metric):
    kind = "counter"

    def inc(self, amount: float = 1, **labels: Any) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        key = self._key(labels)
        self.values[key] = self.values.get(key, 0) + amount

    def set_total(self, total: float, **labels: Any) -> None:
        """Mirror a count kept elsewhere; a lower value than before is ignored."""
        key = self._key(labels)
        self.values[key] = max(self.values.get(key, 0), total)


class Gauge(Metric):
    kind = "gauge"

    def set(self, value: float | None, **labels: Any) -> None:
        """None removes the sample (nothing to report, e.g. no call in progress)."""
        key = self._key(labels)
        if value is None:
            self.values.pop(key, None)
        else:
            self.values[key] = value


class Histogram(Metric):
    kind = "histogram"

    def __init__(self, name: str, help: str, buckets: Sequence[float]) -> None:
        super().__init__(name, help)
        self.buckets = tuple(sorted(float(b) for b in buckets))
        self.counts = [0] * len(self.buckets)  # per bucket, made cumulative when rendered
        self.count, self.sum = 0, 0.0

    def observe(self, value: float) -> None:
        self.count += 1
        self.sum += value
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
                break

    def samples(self) -> Iterator[tuple[str, str, float]]:
        cumulative = 0
        for bound, count in zip(self.buckets, self.counts, strict=True):
            cumulative += count
            yield f"{self.name}_bucket", f'{{le="{_value(bound)}"}}', cumulative
        yield f"{self.name}_bucket", '{le="+Inf"}', self.count
        yield f"{self.name}_sum", "", self.sum
        yield f"{self.name}_count", "", self.count


class Registry:
    def __init__(self) -> None:
        self.metrics: dict[str, Metric] = {}
        self._collectors: list[Callable[[], None]] = []

    def register(self, metric: Metric) -> Any:
        if metric.name in self.metrics:
            raise ValueError(f"metric {metric.name} registered twice")
        self.metrics[metric.name] = metric
        return metric

    def counter(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Counter:
        return self.register(Counter(name, help, labelnames))

    def gauge(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Gauge:
        return self.register(Gauge(name, help, labelnames))

    def histogram(self, name: str, help: str, buckets: Sequence[float]) -> Histogram:
        return self.register(Histogram(name, help, buckets))

    def add_collector(self, collect: Callable[[], None]) -> None:
        """`collect()` runs before every scrape, to update metrics from their sources."""
        self._collectors.append(collect)

    def render(self) -> str:
        for collect in self._collectors:
            try:
                collect()
            except Exception:  # a broken source must not take the other metrics down
                log.exception("metrics collector failed")
        lines = []
        for metric in self.metrics.values():
            help_text = metric.help.replace("\\", r"\\").replace("\n", r"\n")
            lines += [f"# HELP {metric.name} {help_text}", f"# TYPE {metric.name} {metric.kind}"]
            lines += [f"{name}{labels} {_value(value)}" for name, labels, value in metric.samples()]
        return "\n".join(lines) + "\n"


class KioskMetrics:
    """kioskd's metrics. The app calls `state_changed`, `call_finished` and (from a collector
    or at call end) `media` with the same summary it gives the call log."""

    def __init__(self, registry: Registry | None = None) -> None:
        r = self.registry = registry if registry is not None else Registry()
        self.calls = r.counter("kioskd_calls_total", "Calls that ended, by outcome and direction.",
                               ("outcome", "direction"))
        self.setup = r.histogram("kioskd_call_setup_seconds",
                                 "Offer received or sent to media connected.", SETUP_BUCKETS)
        self.state = r.gauge("kioskd_call_state", "1 for the call machine's current state.",
                             ("state",))
        self.reconnects = r.counter("kioskd_signaling_reconnects_total",
                                    "Times the signaling connection was lost.")
        self.frames_received = r.counter("kioskd_frames_received_total",
                                         "Video frames received from callers.")
        self.frames_sent = r.counter("kioskd_frames_sent_total", "Video frames sent to callers.")
        self.packets_lost = r.counter("kioskd_packets_lost_total",
                                      "RTP packets lost, as reported by the remote side.")
        self.media_lost = r.counter("kioskd_media_lost_total",
                                    "Times a call's media path was lost (nothing from the peer "
                                    "for call.media_timeout_s).")
        self.rtt = r.gauge("kioskd_call_rtt_seconds",
                           "Round-trip time of the call in progress (absent when idle).")
        # The call's microphone processing (media/processing.py); absent outside a call with
        # an ALSA microphone.
        self.echo_active = r.gauge(
            "kioskd_echo_cancellation_active",
            "1 while the microphone's echo canceller runs with the speaker playing into its "
            "reference, else 0.")
        self.echo_erle = r.gauge(
            "kioskd_echo_erle_db",
            "Echo return loss enhancement, estimated by the kiosk: microphone power in over "
            "processed power out while the speaker plays, automatic gain taken out.")
        self.echo_delay = r.gauge(
            "kioskd_echo_delay_hint_seconds",
            "Delay hint given to the echo canceller (from the devices' buffers).")
        self.shed_level = r.gauge(
            "kioskd_video_shed_level",
            "How much video the kiosk leaves out because its CPU is pressed: 0 none, 1 half "
            "the frame rate, 2 and half the size, 3 a quarter of the frame rate.")
        self.cpu_used = r.gauge(
            "kioskd_cpu_seconds_per_second",
            "CPU the daemon used, all its threads, over the last half second (1 = one core).")
        self.cpu_throttled = r.gauge(
            "kioskd_cpu_throttled_ratio",
            "Share of its CPU quota's periods in which the kernel throttled the daemon, over "
            "the last half second (absent without a quota).")
        self._last: tuple[str, dict[str, float]] | None = None  # (call id, counts seen so far)
        self.state_changed(State.IDLE.value)

    def state_changed(self, state: str) -> None:
        for name in State:
            self.state.set(1 if name.value == state else 0, state=name.value)

    def call_finished(self, effect: Finished, media: Mapping[str, Any] | None = None) -> None:
        call = effect.call
        if media:
            self.media(call.id, media)
        self.calls.inc(outcome=effect.outcome, direction=call.direction)
        if call.connected_at is not None:
            self.setup.observe(max(0.0, call.connected_at - call.started_at))
        if self._last is not None and self._last[0] == call.id:
            self._last = None
            self.rtt.set(None)

    def audio_processing(self, stats: Mapping[str, Any] | None) -> None:
        """The call's microphone processing stats (AudioProcessing.stats()), or None."""
        stats = stats or {}
        active = stats.get("echo_cancellation_active")
        self.echo_active.set(None if not stats else 1 if active else 0)
        self.echo_erle.set(stats.get("erle_db"))
        hint_ms = stats.get("delay_hint_ms")
        self.echo_delay.set(None if hint_ms is None else hint_ms / 1000)

    def video_shedding(self, stats: Mapping[str, Any]) -> None:
        """The load watch's stats (media/shedding.py VideoShedding.stats())."""
        self.shed_level.set(stats.get("level"))
        self.cpu_used.set(stats.get("cpu"))
        self.cpu_throttled.set(stats.get("throttled") if stats.get("cpu_budget") else None)

    def media(self, call_id: str, summary: Mapping[str, Any]) -> None:
        """The call's counts so far (calllog.MEDIA_KEYS: frames_received, frames_sent,
        packets_lost, rtt_ms); None values are skipped. Counters grow by what is new."""
        seen = self._last[1] if self._last is not None and self._last[0] == call_id else {}
        for key, counter in (("frames_received", self.frames_received),
                             ("frames_sent", self.frames_sent),
                             ("packets_lost", self.packets_lost)):
            now = summary.get(key)
            if now is None:
                continue
            before = seen.get(key, 0)
            # Lower than before: the count restarted (a re-offer brings a new connection).
            counter.inc(now - before if now >= before else now)
            seen[key] = now
        self._last = (call_id, seen)
        rtt_ms = summary.get("rtt_ms")
        if rtt_ms is not None:
            self.rtt.set(rtt_ms / 1000)


class MetricsServer:
    """Serves `registry` at http://host:port/metrics. Keep host on loopback: the metrics say
    who calls and when. `port=0` picks a free port; `port` holds the bound one after start()."""

    name = "metrics server"

    def __init__(self, registry: Registry, host: str = "127.0.0.1", port: int = 9464) -> None:
        self.registry, self.host, self.port = registry, host, port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        # access_log=None: a scrape every 15 s would otherwise fill the journal.
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        log.info("metrics at http://%s:%d/metrics", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.registry.render().encode(),
                            headers={"Content-Type": CONTENT_TYPE})
