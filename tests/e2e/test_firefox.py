"""Calls between the caller page in headless Firefox ESR (a second engine besides Chromium:
tests/support/firefox.py) and an in-process kiosk, over the reference relay, inside the suite's
private network namespace.

Firefox's SDP differs from Chromium's in many ways (its own m-line order and ids, no H.264
unless Cisco's OpenH264 plugin was downloaded, which it never is here, VP8 and VP9 with
ulpfec/red...). Each test checks media both ways: the page's getStats() (frames decoded) and the
kiosk's measuring sink. What each call negotiated is printed (`pytest -s` shows it) and
recorded in docs/caller-page.md.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from kioskd.call.states import State
from tests.e2e.conftest import negotiated
from tests.integration.conftest import running_kiosk
from tests.support.firefox import UI_TIMEOUT_MS, FirefoxPage, missing, running_firefox

pytestmark = [
    pytest.mark.netns,
    pytest.mark.e2e,
    pytest.mark.skipif(missing() is not None, reason=missing() or ""),
    pytest.mark.timeout(90),
]

ALICE = "alice-secret"  # the page signs in as alice; the kiosk is "kiosk" (Lobby kiosk)


@pytest.fixture
async def firefox(tmp_path):
    async with running_firefox(tmp_path) as firefox:
        yield firefox


@pytest.fixture
def open_caller(firefox, relay):
    """open_caller(token=..., call=..., autoanswer=...) -> the signed-in caller page."""

    async def open_page(**params) -> FirefoxPage:
        page = firefox.page
        await page.goto(f"{relay.url}/?{urlencode(params)}")
        await page.wait_for("/^signed in/.test(document.querySelector('#me').textContent)")
        return page

    return open_page


# getStats() is async: poll it in the page until the condition over the stats `s` holds.
_WAIT_FOR_STATS = """(async (condition, timeoutMs) => {
  const holds = new Function("s", `return ${condition};`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await window.caller.stats();
    if (s && holds(s)) return s;
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${condition}; last stats: ${JSON.stringify(s)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
})(%s, %d)"""


async def page_stats(page: FirefoxPage, condition: str = "true",
                     timeout_ms: int = UI_TIMEOUT_MS) -> dict:
    return await page.evaluate(_WAIT_FOR_STATS % (json.dumps(condition), timeout_ms),
                               timeout_s=timeout_ms / 1000 + 5)


async def expect_status(page: FirefoxPage, text: str, timeout_ms: int = UI_TIMEOUT_MS) -> None:
    """Wait for the page's status `text`; a call that ends on the way fails at once."""
    state = await page.wait_for(
        f"(s => s === {json.dumps(text)} || {_ENDED}.test(s) ? s : null)(window.caller.state)",
        timeout_ms)
    assert state == text, f"page status {state!r}, expected {text!r}"


_ENDED = "/^(failed|ended|declined|busy|offline|timeout|error)/"


async def connected(page: FirefoxPage, kiosk) -> None:
    await expect_status(page, "connected")
    await kiosk.wait_for_state(State.CONNECTED)


async def audio_grows(page: FirefoxPage) -> None:
    before = await page_stats(page, "s.audioBytesReceived > 0")
    await page_stats(page, f"s.audioBytesReceived > {before['audioBytesReceived']}")


def report(case: str, firefox, kiosk, stats: dict) -> None:
    print(f"\n[{firefox.version}] {case}: page receives {stats['videoCodec']}, sends "
          f"{stats['sendVideoCodec']}; SDP {negotiated(kiosk)}")


async def test_firefox_calls_kiosk_video(relay, open_caller, firefox):
    async with running_kiosk(relay.url) as kiosk:
        page = await open_caller(token=ALICE, call="kiosk")
        await page.click("#video-call")
        await connected(page, kiosk)
        stats = await page_stats(page, "s.framesDecoded > 10 && s.framesEncoded > 10")
        assert stats["videoBytesSent"] > 0 and stats["audioBytesSent"] > 0
        await audio_grows(page)
        await kiosk.runner.media.sink.wait_for_frames(video=10, audio=20, timeout=15)
        assert kiosk.status()["call"]["peer_name"] == "Alice"
        report("Firefox calls the kiosk, video", firefox, kiosk, stats)


async def test_firefox_calls_kiosk_audio_only(relay, open_caller, firefox):
    async with running_kiosk(relay.url) as kiosk:
        page = await open_caller(token=ALICE, call="kiosk")
        await page.click("#audio-call")
        await connected(page, kiosk)
        await audio_grows(page)
        await kiosk.runner.media.sink.wait_for_frames(audio=20, timeout=15)
        stats = await page_stats(page, "s.audioBytesSent > 0")
        assert stats["framesDecoded"] == 0 and stats["framesEncoded"] == 0
        assert kiosk.runner.media.sink.video_frames == 0
        assert kiosk.status()["call"]["type"] == "audio"
        assert "m=video" not in kiosk.runner.session.pc.remoteDescription.sdp
        assert "m=video" not in kiosk.runner.session.pc.localDescription.sdp
        report("Firefox calls the kiosk, audio only", firefox, kiosk, stats)


async def test_kiosk_calls_firefox_which_answers_by_itself(relay, open_caller, firefox):
    async with running_kiosk(relay.url) as kiosk:
        page = await open_caller(token=ALICE, autoanswer=1)
        kiosk.place_call("alice")
        await connected(page, kiosk)
        stats = await page_stats(page, "s.framesDecoded > 10 && s.framesEncoded > 10")
        await audio_grows(page)
        await kiosk.runner.media.sink.wait_for_frames(video=10, audio=20, timeout=15)
        report("the kiosk calls Firefox", firefox, kiosk, stats)


@pytest.mark.parametrize("codecs", [
    '["H264", "VP8"]',  # the Pi 4 profile's list
    '["H264"]',
])
async def test_firefox_calls_a_kiosk_that_prefers_h264(relay, open_caller, firefox, codecs):
    # Firefox here has no H.264 (no OpenH264 plugin): the kiosk has to send VP8.
    async with running_kiosk(relay.url, f"rtc.video_codecs={codecs}") as kiosk:
        page = await open_caller(token=ALICE, call="kiosk")
        await page.click("#video-call")
        await connected(page, kiosk)
        stats = await page_stats(page, "s.framesDecoded > 10 && s.framesEncoded > 10")
        await kiosk.runner.media.sink.wait_for_frames(video=10, timeout=15)
        assert stats["videoCodec"] == stats["sendVideoCodec"] == "video/VP8"
        report(f"Firefox calls a kiosk with rtc.video_codecs={codecs}", firefox, kiosk, stats)


async def test_firefox_calls_a_kiosk_whose_camera_encodes_h264(relay, open_caller, firefox,
                                                              fake_picamera2):
    # The Pi 4 profile: the camera's hardware encoder makes H.264 only, which Firefox cannot
    # decode here; the kiosk has to encode VP8 in software for this call.
    async with running_kiosk(relay.url, "video.source=picamera2", "video.encoder=hardware",
                             "video.width=640", "video.height=480", "video.fps=24",
                             'rtc.video_codecs=["H264", "VP8"]') as kiosk:
        page = await open_caller(token=ALICE, call="kiosk")
        await page.click("#video-call")
        await connected(page, kiosk)
        stats = await page_stats(page, "s.framesDecoded > 10 && s.framesEncoded > 10")
        await kiosk.runner.media.sink.wait_for_frames(video=10, timeout=15)
        assert stats["videoCodec"] == stats["sendVideoCodec"] == "video/VP8"
        report("Firefox calls a kiosk with the picamera2 hardware H.264 encoder", firefox,
               kiosk, stats)
