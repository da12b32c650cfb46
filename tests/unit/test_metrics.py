"""The metrics registry and endpoint, scraped over real HTTP on 127.0.0.1 and parsed."""

from __future__ import annotations

import re

import aiohttp
import pytest

from kioskd.call.events import Call, Finished
from kioskd.metrics import CONTENT_TYPE, KioskMetrics, MetricsServer, Registry

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> tuple[dict[tuple, float], dict[str, str]]:
    """{(name, frozenset(labels)): value} and {name: type}; fails on any malformed line."""
    samples: dict[tuple, float] = {}
    types: dict[str, str] = {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
            continue
        if line.startswith("# HELP "):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, labels, value = match.groups()
        key = (name, frozenset(LABEL.findall(labels or "")))
        assert key not in samples, f"duplicate sample {key}"
        samples[key] = float(value)
    return samples, types


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_registry_text_format() -> None:
    registry = Registry()
    counter = registry.counter("x_total", "Things.\nWith a newline", ("kind",))
    counter.inc(kind='say "hi"\\')
    counter.inc(2.5, kind='say "hi"\\')
    gauge = registry.gauge("g", "A gauge.")
    gauge.set(float("nan"))
    hist = registry.histogram("h_seconds", "A histogram.", (0.5, 1))
    for v in (0.1, 0.5, 0.7, 3):
        hist.observe(v)
    text = registry.render()
    assert "# HELP x_total Things.\\nWith a newline\n# TYPE x_total counter\n" in text
    assert 'x_total{kind="say \\"hi\\"\\\\"} 3.5\n' in text
    assert "g NaN\n" in text
    assert ('h_seconds_bucket{le="0.5"} 2\nh_seconds_bucket{le="1.0"} 3\n'
            'h_seconds_bucket{le="+Inf"} 4\nh_seconds_sum 4.3\nh_seconds_count 4\n') in text
    with pytest.raises(ValueError):
        counter.inc(-1, kind="x")
    with pytest.raises(ValueError):
        counter.inc(wrong="x")
    with pytest.raises(ValueError):
        registry.gauge("g", "again")


def test_collectors_run_at_scrape_and_a_broken_one_is_contained() -> None:
    registry = Registry()
    total = registry.counter("reconnects_total", "From elsewhere.")
    source = [3]
    registry.add_collector(lambda: total.set_total(source[0]))
    registry.add_collector(lambda: 1 / 0)
    assert "reconnects_total 3\n" in registry.render()
    source[0] = 1  # a counter never goes down
    assert "reconnects_total 3\n" in registry.render()


def _call(id: str, connected: bool, direction: str = "incoming") -> Call:
    return Call(id=id, peer="alice", direction=direction, started_at=100.0,
                connected_at=100.8 if connected else None)


async def test_scrape_kiosk_metrics_over_http() -> None:
    metrics = KioskMetrics()
    reconnects = [0]
    metrics.registry.add_collector(lambda: metrics.reconnects.set_total(reconnects[0]))
    server = MetricsServer(metrics.registry, host="127.0.0.1", port=0)
    await server.start()
    url = f"http://127.0.0.1:{server.port}/metrics"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            async def scrape() -> tuple[dict, dict]:
                async with http.get(url) as response:
                    assert response.status == 200
                    assert response.headers["Content-Type"] == CONTENT_TYPE
                    return parse(await response.text())

            samples, types = await scrape()
            assert value(samples, "kioskd_call_state", state="idle") == 1
            assert value(samples, "kioskd_call_state", state="connected") == 0
            assert value(samples, "kioskd_call_setup_seconds_count") == 0
            assert types == {
                "kioskd_calls_total": "counter", "kioskd_call_setup_seconds": "histogram",
                "kioskd_call_state": "gauge", "kioskd_signaling_reconnects_total": "counter",
                "kioskd_frames_received_total": "counter", "kioskd_frames_sent_total": "counter",
                "kioskd_packets_lost_total": "counter", "kioskd_call_rtt_seconds": "gauge",
                "kioskd_media_lost_total": "counter", "kioskd_echo_cancellation_active": "gauge",
                "kioskd_echo_erle_db": "gauge", "kioskd_echo_delay_hint_seconds": "gauge",
                "kioskd_video_shed_level": "gauge", "kioskd_cpu_seconds_per_second": "gauge",
                "kioskd_cpu_throttled_ratio": "gauge"}
            # No call with an ALSA microphone: nothing to say about its echo canceller.
            assert not any(name.startswith("kioskd_echo_") for name, _ in samples)

            # A call: connected, media flowing, a re-offer restarts the counts, then it ends.
            metrics.state_changed("connected")
            metrics.media("c1", {"frames_received": 100, "frames_sent": 90, "packets_lost": 2,
                                 "rtt_ms": 40})
            metrics.media("c1", {"frames_received": 250, "frames_sent": None, "rtt_ms": 60})
            metrics.media("c1", {"frames_received": 30})  # new connection after a re-offer
            reconnects[0] = 2
            samples, _ = await scrape()
            assert value(samples, "kioskd_call_state", state="connected") == 1
            assert value(samples, "kioskd_call_state", state="idle") == 0
            assert value(samples, "kioskd_frames_received_total") == 280
            assert value(samples, "kioskd_frames_sent_total") == 90
            assert value(samples, "kioskd_packets_lost_total") == 2
            assert value(samples, "kioskd_call_rtt_seconds") == 0.06
            assert value(samples, "kioskd_signaling_reconnects_total") == 2

            metrics.call_finished(Finished(_call("c1", True), "answered", "hangup", 160.0),
                                  {"frames_received": 40, "frames_sent": 95})
            metrics.call_finished(Finished(_call("c2", False), "busy", "busy", 161.0))
            metrics.call_finished(Finished(_call("c3", False, "outgoing"), "timed out", None, 1))
            metrics.state_changed("idle")
            samples, _ = await scrape()
            assert value(samples, "kioskd_calls_total", outcome="answered",
                         direction="incoming") == 1
            assert value(samples, "kioskd_calls_total", outcome="busy", direction="incoming") == 1
            assert value(samples, "kioskd_calls_total", outcome="timed out",
                         direction="outgoing") == 1
            assert value(samples, "kioskd_frames_received_total") == 290
            assert value(samples, "kioskd_frames_sent_total") == 95
            assert ("kioskd_call_rtt_seconds", frozenset()) not in samples  # no call, no rtt
            assert value(samples, "kioskd_call_setup_seconds_count") == 1
            assert value(samples, "kioskd_call_setup_seconds_sum") == pytest.approx(0.8)
            assert value(samples, "kioskd_call_setup_seconds_bucket", le="0.5") == 0
            assert value(samples, "kioskd_call_setup_seconds_bucket", le="1.0") == 1
            assert value(samples, "kioskd_call_setup_seconds_bucket", le="+Inf") == 1

            async with http.get(f"http://127.0.0.1:{server.port}/other") as response:
                assert response.status == 404
    finally:
        await server.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as http:
            await http.get(url)


def test_the_echo_canceller_is_shown_while_a_call_has_one() -> None:
    metrics = KioskMetrics()
    stats: list[dict | None] = [None]
    metrics.registry.add_collector(lambda: metrics.audio_processing(stats[0]))
    echo = ("kioskd_echo_cancellation_active", "kioskd_echo_erle_db",
            "kioskd_echo_delay_hint_seconds")

    def shown() -> dict[str, float]:
        samples, _ = parse(metrics.registry.render())
        return {name: v for (name, _), v in samples.items() if name in echo}

    assert shown() == {}  # no call
    stats[0] = {"state": "processing", "echo_cancellation_active": True, "erle_db": 31.5,
                "delay_hint_ms": 20}
    assert shown() == {"kioskd_echo_cancellation_active": 1, "kioskd_echo_erle_db": 31.5,
                       "kioskd_echo_delay_hint_seconds": 0.02}
    # Without the library (or a sink): not active, nothing measured.
    stats[0] = {"state": "pass-through", "echo_cancellation_active": False, "erle_db": None,
                "delay_hint_ms": None}
    assert shown() == {"kioskd_echo_cancellation_active": 0}
    stats[0] = None  # the call ended
    assert shown() == {}
