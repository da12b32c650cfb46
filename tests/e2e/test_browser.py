"""Calls between the caller page in headless Chromium and an in-process kiosk, over the
reference relay, inside the suite's private network namespace.

The page's side is read from its own getStats() (window.caller.stats()), the kiosk's from its
measuring sink, so every test checks both directions of the media it claims.
"""

from __future__ import annotations

import asyncio

import pytest

from kioskd.call.events import Hangup
from kioskd.call.states import State
from tests.e2e.conftest import UI_TIMEOUT_MS, expect, missing, negotiated
from tests.integration.conftest import running_kiosk
from tests.support.caller import ScriptedCaller

pytestmark = [
    pytest.mark.netns,
    pytest.mark.e2e,
    pytest.mark.skipif(missing() is not None, reason=missing() or ""),
    pytest.mark.timeout(60),
]

ALICE = "alice-secret"  # the page signs in as alice; the kiosk is "kiosk" (Lobby kiosk)
BOB = "bob-secret"  # user 42, for the tests where a scripted caller (alice) calls the page

# page.wait_for_function does not await a promise, and getStats() is async: poll in the page.
_WAIT_FOR_STATS = """async ([condition, timeoutMs]) => {
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
}"""


async def page_stats(page, condition: str = "true", timeout_ms: int = UI_TIMEOUT_MS) -> dict:
    """The page's stats once `condition` (JS over the stats `s`) holds."""
    return await page.evaluate(_WAIT_FOR_STATS, [condition, timeout_ms])


async def expect_status(page, text: str, timeout_ms: int = UI_TIMEOUT_MS) -> None:
    await expect(page.locator("#status")).to_have_text(text, timeout=timeout_ms)


async def page_sent(page, event: str) -> None:
    """Wait until the page has emitted `event`."""
    await page.wait_for_function(
        "e => window.caller.events.some(x => x.dir === 'out' && x.event === e)",
        arg=event, timeout=UI_TIMEOUT_MS)


async def audio_grows(page) -> None:
    """Audio keeps arriving at the page (not just a first burst)."""
    before = await page_stats(page, "s.audioBytesReceived > 0")
    await page_stats(page, f"s.audioBytesReceived > {before['audioBytesReceived']}")


async def connected(page, kiosk) -> None:
    await expect_status(page, "connected")
    await kiosk.wait_for_state(State.CONNECTED)


async def test_browser_calls_kiosk_video(relay, open_caller):
    async with running_kiosk(relay.url) as kiosk:
        page = await open_caller(token=ALICE, call="kiosk")
        await page.click("#video-call")
        await connected(page, kiosk)
        stats = await page_stats(page, "s.framesDecoded > 10 && s.framesEncoded > 10")
        assert stats["videoBytesSent"] > 0 and stats["audioBytesSent"] > 0
        await audio_grows(page)
        await kiosk.runner.media.sink.wait_for_frames(video=10, audio=20, timeout=15)
        assert kiosk.status()["call"]["peer_name"] == "Alice"
        print(f"\nChromium calls the kiosk, video: page receives {stats['videoCodec']}, sends "
              f"{stats['sendVideoCodec']}; SDP {negotiated(kiosk)}")


async def test_browser_calls_kiosk_audio_only(relay, open_caller):
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
        # The kiosk answered the m-lines it was offered: audio only.
        assert "m=video" not in kiosk.runner.session.pc.remoteDescription.sdp
        assert "m=video" not in kiosk.runner.session.pc.localDescription.sdp


async def test_kiosk_calls_browser_which_answers_by_itself(relay, open_caller):
    async with running_kiosk(relay.url) as kiosk:
        page = await open_caller(token=ALICE, autoanswer=1)
        kiosk.place_call("alice")
        await connected(page, kiosk)
        await expect(page.locator("#incoming")).to_be_hidden()
        await page_stats(page, "s.framesDecoded > 10 && s.framesEncoded > 10")
        await audio_grows(page)
        await kiosk.runner.media.sink.wait_for_frames(video=10, audio=20, timeout=15)


async def test_browser_hangs_up(relay, open_caller):
    async with running_kiosk(relay.url) as kiosk:
        page = await open_caller(token=ALICE, call="kiosk")
        await page.click("#video-call")
        await connected(page, kiosk)
        await page.click("#hangup")
        await expect_status(page, "ended: hangup")
        await kiosk.wait_for_state(State.IDLE)
        assert kiosk.runner.last_call["outcome"] == "answered"
        assert kiosk.runner.last_call["reason"] == "hangup"


async def test_kiosk_hangs_up(relay, open_caller):
    async with running_kiosk(relay.url) as kiosk:
        page = await open_caller(token=ALICE, call="kiosk")
        await page.click("#video-call")
        await connected(page, kiosk)
        kiosk.post(Hangup())
        await expect_status(page, "ended: hangup")
        await kiosk.wait_for_state(State.IDLE)
        assert await page.evaluate("window.caller.stats()") is None  # connection closed


async def test_browser_declines_the_kiosks_call(relay, open_caller):
    async with running_kiosk(relay.url) as kiosk:
        page = await open_caller(token=ALICE)
        kiosk.place_call("alice")
        await expect_status(page, "ringing")
        await expect(page.locator("#incoming")).to_be_visible()
        await expect(page.locator("#incoming-from")).to_have_text("Lobby kiosk")  # relay's name
        await page.click("#decline")
        await expect_status(page, "declined")
        await expect(page.locator("#incoming")).to_be_hidden()
        await kiosk.wait_for_state(State.IDLE)
        assert kiosk.runner.last_call["outcome"] == "declined"


async def test_kiosk_call_nobody_answers(relay, open_caller):
    async with running_kiosk(relay.url, "call.ring_timeout_s=2") as kiosk:
        page = await open_caller(token=ALICE)
        kiosk.place_call("alice")
        await expect_status(page, "ringing")
        await expect_status(page, "timeout")
        assert await page.evaluate(
            "window.caller.events.some(e => e.dir === 'in' && e.event === 'webrtc:call-timeout')")
        await kiosk.wait_for_state(State.IDLE)
        assert kiosk.runner.last_call["outcome"] == "timed out"


async def test_browser_call_nobody_answers(relay, open_caller):
    # The kiosk would stop ringing after 5 s (running_kiosk); the page gives up after 2.
    async with running_kiosk(relay.url, "answer.mode=manual") as kiosk:
        page = await open_caller(token=ALICE, call="kiosk", ring=2)
        await page.click("#video-call")
        await expect_status(page, "calling")
        await kiosk.wait_for_state(State.RINGING)
        await expect_status(page, "timeout")
        await page_sent(page, "webrtc:call-timeout")
        await kiosk.wait_for_state(State.IDLE)
        assert kiosk.runner.last_call["outcome"] == "missed"
        assert kiosk.runner.last_call["reason"] == "timeout"


@pytest.mark.parametrize("codecs,expected", [
    ('["H264", "VP8"]', "video/H264"),
    ('["VP8"]', "video/VP8"),
])
@pytest.mark.parametrize("caller", ["browser", "kiosk"])
async def test_video_codec_follows_the_kiosk_config(relay, open_caller, caller, codecs,
                                                    expected):
    # Chrome offers VP8 first: as the answerer the kiosk must still pick its own preference.
    async with running_kiosk(relay.url, f"rtc.video_codecs={codecs}") as kiosk:
        if caller == "browser":
            page = await open_caller(token=ALICE, call="kiosk")
            await page.click("#video-call")
        else:
            page = await open_caller(token=ALICE, autoanswer=1)
            kiosk.place_call("alice")
        await connected(page, kiosk)
        stats = await page_stats(page, "s.framesDecoded > 5 && s.framesEncoded > 5")
        assert stats["videoCodec"] == expected  # what the kiosk sends
        assert stats["sendVideoCodec"] == expected  # what the page sends
        await kiosk.runner.media.sink.wait_for_frames(video=5, timeout=15)
        print(f"\nChromium ({caller} calls), rtc.video_codecs={codecs}: page receives "
              f"{stats['videoCodec']}, sends {stats['sendVideoCodec']}; SDP {negotiated(kiosk)}")


# The page's offers list H.264 alone (and its RTX), like a caller whose browser has no VP8.
_H264_ONLY_OFFERS = """() => {
  const createOffer = RTCPeerConnection.prototype.createOffer;
  RTCPeerConnection.prototype.createOffer = function (...args) {
    const h264 = RTCRtpReceiver.getCapabilities("video").codecs
      .filter((c) => /^video\\/(h264|rtx)$/i.test(c.mimeType));
    for (const t of this.getTransceivers()) {
      if (t.receiver.track.kind === "video") t.setCodecPreferences(h264);
    }
    return createOffer.apply(this, args);
  };
}"""


async def test_h264_only_browser_calls_a_kiosk_that_prefers_vp8(relay, open_caller):
    async with running_kiosk(relay.url, 'rtc.video_codecs=["VP8", "H264"]') as kiosk:
        page = await open_caller(token=ALICE, call="kiosk")
        await page.evaluate(_H264_ONLY_OFFERS)
        await page.click("#video-call")
        await connected(page, kiosk)
        offered = kiosk.runner.session.pc.remoteDescription.sdp
        assert "VP8" not in offered and "H264" in offered
        stats = await page_stats(page, "s.framesDecoded > 5 && s.framesEncoded > 5")
        assert stats["videoCodec"] == stats["sendVideoCodec"] == "video/H264"
        await kiosk.runner.media.sink.wait_for_frames(video=5, timeout=15)
        print(f"\nChromium, H.264-only offer, kiosk prefers VP8: page receives "
              f"{stats['videoCodec']}, sends {stats['sendVideoCodec']}; SDP {negotiated(kiosk)}")


async def test_unknown_token_shows_unauthorized(relay, browser):
    page = browser.pages[0]
    await page.goto(f"{relay.url}/?token=wrong")
    await expect(page.locator("#me")).to_have_text("unauthorized", timeout=UI_TIMEOUT_MS)
    assert await page.locator("#video-call").is_disabled()


async def test_calling_an_offline_user(open_caller):
    page = await open_caller(token=ALICE, call="nobody")
    await page.click("#video-call")
    await expect_status(page, "offline")
    assert await page.evaluate("window.caller.stats()") is None  # the attempt was cleaned up


async def test_reoffer_is_answered_in_place_and_others_get_busy(relay, open_caller):
    page = await open_caller(token=BOB, autoanswer=1)
    alice = ScriptedCaller(relay.url, ALICE)
    await alice.connect()
    try:
        await alice.call(42)  # candidates trickled right behind the offer, as browsers do
        await alice.receive_answer()
        await expect_status(page, "connected")
        first_pc = alice.pc
        # Same call, new connection (the peer recovering): answered without ringing again.
        await alice.call(42, call_id=alice.call_id)
        await alice.receive_answer()
        await asyncio.wait_for(alice.connected.wait(), 10)
        await first_pc.close()
        await alice.sink.wait_for_frames(video=5, audio=20, timeout=15)
        await page_stats(page, "s.framesDecoded > 5 && s.connectionState === 'connected'")
        events = await page.evaluate("window.caller.events")
        assert [e["event"] for e in events if e["dir"] == "out" and e["event"] in
                ("webrtc:answer", "webrtc:call-reject")] == ["webrtc:answer"] * 2
        # Anyone else is told busy, and the call goes on.
        async with running_kiosk(relay.url) as kiosk:
            kiosk.place_call(42)
            await kiosk.wait_for_state(State.CALLING)
            await kiosk.wait_for_state(State.IDLE)
            assert kiosk.runner.last_call["outcome"] == "busy"
        await expect_status(page, "connected")
    finally:
        await alice.close()
