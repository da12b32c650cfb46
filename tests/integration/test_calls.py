"""Real calls: a scripted browser-like caller, the reference relay and kioskd, all on loopback
inside the suite's private network namespace."""

from __future__ import annotations

import asyncio

import pytest

from kioskd.call.states import State
from kioskd.relay.server import running_relay
from kioskd.rtc.jitter import MarkerJitterBuffer
from tests.integration.conftest import TOKENS, connected_call, running_kiosk
from tests.support.caller import ScriptedCaller

pytestmark = [pytest.mark.netns, pytest.mark.timeout(90)]


def kiosk_sink(kiosk):
    return kiosk.runner.media.sink


async def test_auto_answer_video_and_audio_both_ways(kiosk, alice):
    await connected_call(kiosk, alice, "video")
    await alice.sink.wait_for_frames(video=20, audio=50, timeout=15)
    await kiosk_sink(kiosk).wait_for_frames(video=20, audio=50, timeout=15)
    stats = kiosk_sink(kiosk).stats()
    assert stats["stamps_decoded"] > 0  # the caller's test pattern arrived readable
    assert alice.sink.stats()["stamps_decoded"] > 0
    status = kiosk.status()
    assert status["state"] == "connected" and status["call"]["peer"] == "alice"
    assert status["call"]["peer_name"] == "Alice"
    # The caller's video came through the jitter buffer that releases frames at their marker.
    video = [t.receiver for t in kiosk.runner.session.pc.getTransceivers() if t.kind == "video"]
    assert [type(r._RTCRtpReceiver__jitter_buffer) for r in video] == [MarkerJitterBuffer]


async def test_candidates_ahead_of_the_offer(kiosk, alice):
    await connected_call(kiosk, alice, "video", candidates_first=True)
    await kiosk_sink(kiosk).wait_for_frames(video=5, timeout=15)


async def test_audio_only_call(kiosk, alice):
    await connected_call(kiosk, alice, "audio")
    await alice.sink.wait_for_frames(audio=50, timeout=15)
    await kiosk_sink(kiosk).wait_for_frames(audio=50, timeout=15)
    assert alice.sink.video_frames == 0 and kiosk_sink(kiosk).video_frames == 0
    assert "m=video" not in alice.pc.remoteDescription.sdp


async def test_caller_hangs_up(kiosk, alice):
    await connected_call(kiosk, alice)
    await alice.hangup()
    await kiosk.wait_for_state(State.IDLE)
    assert kiosk.runner.last_call["outcome"] == "answered"
    assert kiosk.runner.last_call["reason"] == "hangup"


async def test_kiosk_hangs_up(kiosk, alice):
    await connected_call(kiosk, alice)
    from kioskd.call.events import Hangup
    kiosk.post(Hangup())
    data = await alice.expect("webrtc:call-end")
    assert data["from"] == "kiosk" and data["callId"] == alice.call_id
    await kiosk.wait_for_state(State.IDLE)


async def test_second_caller_is_told_busy(kiosk, alice, bob):
    await connected_call(kiosk, alice)
    await bob.call("kiosk")
    data = await bob.expect("webrtc:call-reject")
    assert data["reason"] == "busy" and data["from"] == "kiosk"
    assert kiosk.runner.machine.state is State.CONNECTED
    assert kiosk.runner.machine.call.peer == "alice"


async def test_reoffer_from_the_same_caller_replaces_the_connection(kiosk, alice):
    await connected_call(kiosk, alice)
    old_pc = alice.pc
    await alice.call("kiosk", call_id=alice.call_id)  # same call, new connection
    await alice.receive_answer()
    await asyncio.wait_for(alice.connected.wait(), 10)
    await kiosk.wait_for_state(State.CONNECTED)
    assert kiosk.runner.machine.call.attempt == 2
    assert State.RINGING not in kiosk.runner.machine.history
    await old_pc.close()


async def test_manual_mode_rings_and_times_out(relay, alice):
    async with running_kiosk(relay.url, "answer.mode=manual", "call.ring_timeout_s=1.5") as kiosk:
        await alice.call("kiosk")
        await kiosk.wait_for_state(State.RINGING)
        data = await alice.expect("webrtc:call-reject", timeout=5)
        assert data["reason"] == "timeout"
        await kiosk.wait_for_state(State.IDLE)
        assert kiosk.runner.last_call["outcome"] == "missed"


async def test_manual_mode_answered_by_a_person(relay, alice):
    async with running_kiosk(relay.url, "answer.mode=manual") as kiosk:
        await alice.call("kiosk")
        await kiosk.wait_for_state(State.RINGING)
        from kioskd.call.events import AnswerCall
        kiosk.post(AnswerCall())
        await alice.receive_answer()
        await asyncio.wait_for(alice.connected.wait(), 10)
        await kiosk.wait_for_state(State.CONNECTED)


async def test_allowlist_refuses_a_stranger_and_answers_a_friend(relay, alice, bob):
    async with running_kiosk(relay.url, "answer.mode=allowlist", 'answer.allow=["42"]') as kiosk:
        await alice.call("kiosk")
        data = await alice.expect("webrtc:call-reject")
        assert data["reason"] == "policy"
        assert kiosk.runner.machine.state is State.IDLE
        await connected_call(kiosk, bob)  # numeric id 42 is on the list


@pytest.mark.parametrize("event,payload", [
    ("webrtc:offer", "not an object"),
    ("webrtc:offer", {"to": "kiosk", "offer": {"type": "offer", "sdp": 12}}),
    ("webrtc:offer", {"to": "kiosk", "offer": {"type": "offer", "sdp": "v=0" + "x" * 70000}}),
    ("webrtc:offer", {"to": "kiosk", "offer": {"type": "offer", "sdp": "v=0\r\nm=nonsense\r\n"}}),
    ("webrtc:offer", {"to": "kiosk", "offer": {"type": "offer", "sdp": "v=0\r\n"},
                      "type": "hologram"}),
    ("webrtc:ice-candidate", {"to": "kiosk", "candidate": {"candidate": 5}}),
    ("webrtc:ice-candidate", {"to": "kiosk", "candidate": {"candidate": "candidate:garbage",
                                                           "sdpMid": "0"}}),
    ("webrtc:answer", {"to": "kiosk", "answer": None}),
    ("webrtc:call-end", {"to": "kiosk", "callId": ["x"]}),
])
async def test_malformed_events_leave_the_kiosk_callable(kiosk, alice, event, payload):
    await alice.emit(event, payload)
    if event == "webrtc:offer" and isinstance(payload, dict) and "sdp" in str(payload):
        # An offer that parses but that aiortc refuses is rejected, and the kiosk is idle.
        pass
    await connected_call(kiosk, alice)
    await kiosk_sink(kiosk).wait_for_frames(video=3, timeout=15)


async def test_unusable_offer_is_rejected_at_once(kiosk, alice):
    await alice.emit("webrtc:offer", {"to": "kiosk", "type": "video", "callId": "bad1",
                                      "offer": {"type": "offer", "sdp": "v=0\r\nm=video x\r\n"}})
    data = await alice.expect("webrtc:call-reject")
    assert data["reason"] == "failed" and data["callId"] == "bad1"
    await kiosk.wait_for_state(State.IDLE)


async def test_kiosk_survives_a_relay_restart(alice):
    async with running_relay(TOKENS) as first:
        port = int(first.url.rsplit(":", 1)[1])
        async with running_kiosk(first.url, "signaling.connect_timeout_s=2") as kiosk:
            await first.stop()
            # The kiosk notices and keeps trying; a new relay on the same port takes it back.
            async with kiosk.status_keeper.state_changed:
                await asyncio.wait_for(kiosk.status_keeper.state_changed.wait_for(
                    lambda: kiosk.signaling.status != "online"), 10)
            async with running_relay(TOKENS, port=port) as second:
                await asyncio.wait_for(kiosk.signaling.connected.wait(), 30)
                caller = ScriptedCaller(second.url, "alice-secret")
                await caller.connect()
                try:
                    await connected_call(kiosk, caller)
                finally:
                    await caller.close()
            assert kiosk.signaling.reconnects >= 1


async def test_unauthorized_token_is_a_configuration_error_not_a_crash(relay, tmp_path):
    from kioskd.app import KioskApp
    from kioskd.config import load_config
    config = load_config(None, [f"signaling.url={relay.url}",
                                f"calllog.path={tmp_path / 'calls.sqlite3'}",
                                f"control.socket={tmp_path / 'control.sock'}"])
    app = KioskApp(config, "wrong-token")
    task = asyncio.create_task(app.run())
    try:
        async with app.status_keeper.state_changed:
            await asyncio.wait_for(app.status_keeper.state_changed.wait_for(
                lambda: app.signaling.status == "unauthorized"), 10)
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_kiosk_calls_out_and_is_answered(kiosk, alice):
    kiosk.place_call("alice")
    offer = await alice.answer_incoming()
    assert offer["from"] == "kiosk" and offer["type"] == "video"
    await asyncio.wait_for(alice.connected.wait(), 10)
    await kiosk.wait_for_state(State.CONNECTED)
    await alice.sink.wait_for_frames(video=5, audio=20, timeout=15)
    await kiosk_sink(kiosk).wait_for_frames(video=5, audio=20, timeout=15)


async def test_kiosk_call_out_times_out(relay, alice):
    async with running_kiosk(relay.url, "call.ring_timeout_s=1", "call.contact=alice") as kiosk:
        kiosk.place_call()  # call.contact
        await alice.expect("webrtc:offer")
        data = await alice.expect("webrtc:call-timeout", timeout=5)
        assert data["from"] == "kiosk"
        await kiosk.wait_for_state(State.IDLE)
        assert kiosk.runner.last_call["outcome"] == "timed out"


async def test_calling_an_offline_user_ends_the_attempt(kiosk):
    kiosk.place_call("nobody")
    await kiosk.wait_for_state(State.CALLING)
    await kiosk.wait_for_state(State.IDLE)
    assert kiosk.runner.last_call["outcome"] == "failed"
    assert kiosk.runner.last_call["reason"] == "unavailable"


async def test_a_display_that_cannot_open_does_not_stop_the_call(relay, alice, monkeypatch):
    # SDL's "offscreen" driver exists everywhere; a driver name that doesn't makes
    # pygame's display init fail the way a kiosk with no screen attached would.
    monkeypatch.setenv("SDL_VIDEODRIVER", "no-such-driver")
    async with running_kiosk(relay.url, "display.mode=window") as kiosk:
        assert kiosk.screen is None and "display.mode" in kiosk.problems.errors()
        await connected_call(kiosk, alice)
        await kiosk.runner.media.sink.wait_for_frames(video=5, audio=10, timeout=15)


async def test_remote_video_is_rendered_in_a_window(relay, alice, monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")  # a real SDL window, no screen needed
    async with running_kiosk(relay.url, "display.mode=window") as kiosk:
        await connected_call(kiosk, alice)
        from kioskd.ui import ScreenSink
        from tests.support.screen_probe import ScreenProbe
        assert isinstance(kiosk.runner.media.sink, ScreenSink)
        await ScreenProbe(kiosk.screen).wait_for_rendered(10, timeout=15,
                                                          sink=kiosk.runner.media.sink)
        assert kiosk.screen.stats()["screen"] == "in_call"


async def test_caller_vanishing_without_call_end_frees_the_kiosk(kiosk, alice, bob):
    """A crashed or reloaded browser sends no call-end: its connection closing must end the call."""
    await connected_call(kiosk, alice)
    await alice.pc.close()  # no webrtc:call-end
    alice.pc = None
    await kiosk.wait_for_state(State.IDLE, timeout=15)
    assert kiosk.runner.last_call["outcome"] == "answered"
    await connected_call(kiosk, bob)  # and the next caller is answered, not told busy


async def test_mute_sends_silence_and_camera_off_sends_black_without_renegotiating(kiosk, alice):
    await connected_call(kiosk, alice)
    await alice.sink.wait_for_frames(video=10, audio=25, timeout=15)
    sdp = alice.pc.remoteDescription.sdp
    kiosk.set_muted("audio", True)
    kiosk.set_muted("video", True)
    stamps = alice.sink.stamps_decoded
    frames, audio = alice.sink.video_frames, alice.sink.audio_frames
    await alice.sink.wait_for_frames(video=frames + 15, audio=audio + 60, timeout=15)
    assert alice.sink.audio_level_dbfs() < -90  # silence, still flowing
    assert alice.sink.stamps_decoded - stamps <= 2  # black frames carry no stamp
    kiosk.set_muted("audio", False)
    kiosk.set_muted("video", False)
    frames, audio = alice.sink.video_frames, alice.sink.audio_frames
    await alice.sink.wait_for_frames(video=frames + 15, audio=audio + 60, timeout=15)
    assert alice.sink.audio_level_dbfs() > -30 and alice.sink.stamps_decoded > stamps + 5
    assert alice.pc.remoteDescription.sdp == sdp  # nothing was renegotiated


async def test_memory_goes_back_once_the_kiosk_is_idle_after_a_call(kiosk, alice, monkeypatch):
    trimmed = asyncio.Event()
    loop = asyncio.get_running_loop()
    monkeypatch.setattr("kioskd.call.runner.release_free_memory",
                        lambda: loop.call_soon_threadsafe(trimmed.set))
    await connected_call(kiosk, alice)
    await alice.hangup()
    await kiosk.wait_for_state(State.IDLE)
    assert not trimmed.is_set()  # not at once: a next call must not wait for it
    await asyncio.wait_for(trimmed.wait(), 5)
