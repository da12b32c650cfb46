"""The kiosk's life around its calls, through the real relay and real aiortc callers: stopping,
offline, a peer that closes before its call-end, a connection that never completes, a speaker
that cannot be had, and kioskctl talking to an in-process daemon."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import socket

import pytest

from kioskd.call.machine import PEER_CLOSED
from kioskd.call.states import State
from kioskd.cli import ctl_main
from kioskd.media import registry
from tests.integration.conftest import connected_call, running_kiosk
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.netns, pytest.mark.timeout(60)]


async def kioskctl(*argv: str) -> tuple[int, str, str]:
    """kioskctl as a person types it, run beside the in-process daemon (off its loop)."""
    def run() -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = ctl_main(list(argv))
        return code, out.getvalue(), err.getvalue()
    return await asyncio.to_thread(run)


async def test_a_stopping_kiosk_hangs_up_before_it_leaves_the_server(relay, alice):
    async with running_kiosk(relay.url) as kiosk:
        await connected_call(kiosk, alice)
        call_id = alice.call_id
    # running_kiosk cancelled the daemon, as SIGINT or SIGTERM does.
    ended = await alice.expect("webrtc:call-end", timeout=5)
    assert ended["from"] == "kiosk" and ended["callId"] == call_id
    assert ended["reason"] == "hangup"


async def test_a_call_end_behind_the_peers_close_is_recorded_as_a_hang_up(kiosk, alice):
    await connected_call(kiosk, alice)
    # A browser's hang-up: its connection closes straight to us, its call-end comes through
    # the server, here deliberately after the close has arrived.
    await alice.close_pc()
    closed = (PEER_CLOSED, alice.call_id)
    await wait_until(lambda: closed in kiosk.runner.timers)  # the kiosk has seen the close
    await alice.emit("webrtc:call-end", {"to": "kiosk", "callId": alice.call_id})
    await kiosk.wait_for_state(State.IDLE)
    assert kiosk.runner.last_call["outcome"] == "answered"
    assert kiosk.runner.last_call["reason"] == "hangup"


async def test_a_peer_that_closes_without_a_call_end_still_frees_the_kiosk(kiosk, alice):
    await connected_call(kiosk, alice)
    await alice.close_pc()
    await kiosk.wait_for_state(State.IDLE, timeout=10)
    assert kiosk.runner.last_call["reason"] == "failed"


async def test_a_call_that_never_connects_leaves_no_task_behind(relay, alice):
    async with running_kiosk(relay.url, "call.connect_timeout_s=1") as kiosk:
        await alice.call("kiosk", "video", trickle=False)
        await alice.expect("webrtc:answer")  # never applied: the media never connects
        await kiosk.wait_for_state(State.CONNECTING)
        await wait_until(lambda: kiosk.runner.media is not None
                         and kiosk.runner.media.sink is not None)  # the caller's tracks
        await kiosk.wait_for_state(State.IDLE, timeout=10)
        assert kiosk.runner.last_call["reason"] == "connect timeout"

        def leftovers() -> list[str]:
            return [t.get_name() for t in asyncio.all_tasks()
                    if t.get_name().startswith(("drain", "call "))]
        await wait_until(lambda: not leftovers(), timeout=5)


async def test_a_speaker_that_cannot_be_had_costs_the_sound_not_the_call(relay, alice,
                                                                      monkeypatch):
    async with running_kiosk(relay.url, "audio.sink=alsa") as kiosk:
        # As if pyalsaaudio had gone missing after the config was checked.
        monkeypatch.setitem(registry.AUDIO_SINKS, "alsa", "kioskd.media.no_such_module:Speaker")
        await connected_call(kiosk, alice)
        await kiosk.runner.media.sink.wait_for_frames(video=5, audio=10, timeout=15)
        error = kiosk.status()["media_errors"]["audio.sink"]
        assert "audio.sink 'alsa' cannot be used" in error and "no_such_module" in error
        await alice.sink.wait_for_frames(video=5, audio=10, timeout=15)  # both ways


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_an_offline_kiosk_says_why_and_refuses_to_call(tmp_path):
    from kioskd.app import KioskApp
    from kioskd.config import load_config

    url = f"http://127.0.0.1:{closed_port()}"
    sock = tmp_path / "control.sock"
    config = load_config(None, [f"signaling.url={url}", f"calllog.path={tmp_path / 'c.db'}",
                                f"control.socket={sock}", "call.contact=alice",
                                "signaling.connect_timeout_s=1"])
    app = KioskApp(config, "kiosk-secret")
    task = asyncio.create_task(app.run())
    try:
        await wait_until(lambda: app.signaling.last_error is not None, timeout=10)
        status = app.status()
        assert status["signaling"] == "offline"
        assert status["signaling_error"].startswith(f"cannot reach {url}")

        code, out, _ = await kioskctl("status", "--set", f"control.socket={sock}")
        assert code == 0 and f"not online: cannot reach {url}" in out
        code, out, err = await kioskctl("call", "alice", "--set", f"control.socket={sock}")
        assert code == 1 and out == ""
        assert f"the kiosk is offline and cannot call now: cannot reach {url}" in err
        assert app.runner.machine.state is State.IDLE  # nothing half-started
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_kioskctl_options_work_after_the_subcommand(kiosk):
    sock = str(kiosk.control.path)
    for argv in (["status", "--json", "--set", f"control.socket={sock}"],
                 ["--json", "--set", f"control.socket={sock}", "status"],
                 ["--set", f"control.socket={sock}", "calls", "--json", "--missed"]):
        code, out, err = await kioskctl(*argv)
        assert code == 0, err
        assert json.loads(out)["ok"] is True


async def test_kioskctl_config_show_and_selftest_see_the_running_daemons_config(
        relay, tmp_path, monkeypatch):
    # Like the demo: everything is --set, and the socket is the automatic one.
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path))
    monkeypatch.setattr("kioskd.ctl.DEFAULT_CONFIG", tmp_path / "no-such.toml")
    token = tmp_path / "token"
    token.write_text("kiosk-secret\n")
    async with running_kiosk(relay.url, "control.socket=", "kiosk.name=Lobby demo",
                             f"signaling.token_file={token}"):
        code, out, err = await kioskctl("config", "show", "--json")
        assert code == 0, err
        shown = json.loads(out)
        assert shown["kiosk"]["name"] == "Lobby demo"
        assert shown["signaling"]["url"] == relay.url

        code, out, err = await kioskctl("selftest", "--json")
        report = json.loads(out)
        assert code == 0 and report["ok"], out
        signaling = next(c for c in report["checks"] if c["name"] == "signaling")
        assert signaling["detail"].startswith(f"{relay.url}: connected")
