"""The installed commands as an admin runs them: `kioskd --config ... --set ...` and `kioskctl`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.support.caller import ScriptedCaller

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = ROOT / "config" / "kioskd.toml"
KIOSKCTL = str(Path(sys.executable).parent / "kioskctl")  # the installed console script


async def _run(*argv: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode, out.decode(), err.decode()


async def _wait_for_line(stream: asyncio.StreamReader, needle: str, timeout: float = 15) -> str:
    async def scan() -> str:
        seen = []
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise AssertionError("kioskd exited; it said:\n" + "".join(seen))
            seen.append(line)
            if needle in line:
                return line
    return await asyncio.wait_for(scan(), timeout)


@pytest.mark.netns
@pytest.mark.timeout(90)
async def test_kioskd_command_answers_and_kioskctl_controls_it(relay, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("kiosk-secret\n")
    socket = tmp_path / "control.sock"
    config_args = ["--config", str(SHIPPED_CONFIG), "--set", f"control.socket={socket}"]
    daemon = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kioskd", *config_args,
        "--set", f"signaling.url={relay.url}", "--set", f"signaling.token_file={token_file}",
        "--set", "display.mode=none", "--set", "video.width=320", "--set", "video.height=240",
        stderr=asyncio.subprocess.PIPE)
    caller = ScriptedCaller(relay.url, "alice-secret")
    try:
        await _wait_for_line(daemon.stderr, "connected to signaling server")
        # Keep reading the log so the pipe never fills up and stalls the daemon.
        drain = asyncio.ensure_future(daemon.stderr.read())
        await caller.connect()
        await caller.call("kiosk")
        await caller.receive_answer()
        await asyncio.wait_for(caller.connected.wait(), 10)
        await caller.sink.wait_for_frames(video=10, audio=20, timeout=15)

        code, out, _ = await _run(KIOSKCTL, *config_args,
                                  "--json", "status")
        status = json.loads(out)["status"]
        assert code == 0 and status["state"] == "connected"
        assert status["call"]["peer"] == "alice"
        code, out, _ = await _run(KIOSKCTL, *config_args, "status")
        assert "connected" in out and "Alice (alice)" in out

        code, out, _ = await _run(KIOSKCTL, *config_args, "hangup")
        assert code == 0
        ended = await caller.expect("webrtc:call-end")
        assert ended["from"] == "kiosk"
        await caller.close_pc()

        # The kiosk calls out on an admin's word, and the callee answers like a browser.
        code, out, _ = await _run(KIOSKCTL, *config_args, "call", "alice")
        assert code == 0 and "calling alice" in out
        offer = await caller.answer_incoming()
        assert offer["from"] == "kiosk" and offer["type"] == "video"
        await asyncio.wait_for(caller.connected.wait(), 10)
        await caller.sink.wait_for_frames(video=5, timeout=15)

        daemon.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(daemon.wait(), 10) == 0
        await drain
        assert not socket.exists()  # the control socket is cleaned up
    finally:
        if daemon.returncode is None:
            daemon.kill()
            await daemon.wait()
        await caller.close()


async def test_kioskctl_says_when_the_daemon_is_not_running(tmp_path):
    code, _, err = await _run(KIOSKCTL, "--set",
                              f"control.socket={tmp_path / 'none.sock'}", "status")
    assert code == 3 and "kioskd is not running" in err


async def test_kioskd_refuses_a_bad_config_naming_file_and_key(tmp_path):
    bad = tmp_path / "kioskd.toml"
    bad.write_text('[answer]\nmode = "sometimes"\n')
    code, _, err = await _run(sys.executable, "-m", "kioskd", "--config", str(bad))
    assert code == 2
    assert str(bad) in err and "answer.mode" in err and '"always"' in err


async def test_kioskd_says_what_to_do_without_a_token(tmp_path):
    code, _, err = await _run(sys.executable, "-m", "kioskd", "--set",
                              f"signaling.token_file={tmp_path / 'missing'}")
    assert code == 2 and "signaling.token_file" in err


async def test_kioskctl_config_check_names_the_key_and_exit_code(tmp_path):
    bad = tmp_path / "kioskd.toml"
    bad.write_text('[answer]\nmode = "sometimes"\n[video]\nfps = 0\n')
    code, _, err = await _run(KIOSKCTL, "config", "check", str(bad))
    assert code == 1
    assert f'{bad}: answer.mode: "sometimes" is not allowed' in err and "video.fps" in err
    code, out, _ = await _run(KIOSKCTL, "config", "check", str(SHIPPED_CONFIG))
    assert code == 0 and "ok" in out


async def test_kioskctl_config_show_masks_secrets(tmp_path):
    code, out, _ = await _run(KIOSKCTL, "--set", 'rtc.ice_servers=[{urls="turn:127.0.0.1:3478", '
                              'username="u", credential="hunter2"}]', "--json", "config", "show")
    shown = json.loads(out)
    assert code == 0 and "hunter2" not in out
    assert shown["rtc"]["ice_servers"][0]["credential"] == "***"


@pytest.mark.netns
@pytest.mark.timeout(90)
async def test_sighup_reloads_without_dropping_the_call(relay, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("kiosk-secret\n")
    config = tmp_path / "kioskd.toml"
    config.write_text(f'[signaling]\nurl = "{relay.url}"\ntoken_file = "{token_file}"\n'
                      f'[control]\nsocket = "{tmp_path / "ctl.sock"}"\n'
                      '[video]\nwidth = 320\nheight = 240\n')
    daemon = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kioskd", "--config", str(config), stderr=asyncio.subprocess.PIPE)
    caller = ScriptedCaller(relay.url, "alice-secret")
    try:
        await _wait_for_line(daemon.stderr, "connected to signaling server")
        await caller.connect()
        await caller.call("kiosk")
        await caller.receive_answer()
        await asyncio.wait_for(caller.connected.wait(), 10)

        # A broken config is refused and the running one kept.
        good = config.read_text()
        config.write_text(good + '[answer]\nmode = "sometimes"\n')
        daemon.send_signal(signal.SIGHUP)
        await _wait_for_line(daemon.stderr, "config reload refused")
        # A good change applies while the call goes on; a signaling change waits for restart.
        config.write_text(good.replace(relay.url, "http://127.0.0.1:1") +
                          '[answer]\nmode = "manual"\n')
        code, out, err = await _run(KIOSKCTL, "--config", str(config), "reload")
        assert code == 0, err
        await _wait_for_line(daemon.stderr, "[signaling] changed; it takes effect after a restart")
        frames = caller.sink.video_frames
        await caller.sink.wait_for_frames(video=frames + 10, timeout=10)  # media still flows
        _, out, _ = await _run(KIOSKCTL, "--config", str(config), "--json", "status")
        assert json.loads(out)["status"]["state"] == "connected"

        await caller.hangup()
        await _wait_for_line(daemon.stderr, "ending -> idle")
        await caller.call("kiosk")  # manual mode now: the kiosk rings instead of answering
        await _wait_for_line(daemon.stderr, "idle -> ringing")
    finally:
        daemon.kill()
        await daemon.wait()
        await caller.close()


@pytest.mark.netns
@pytest.mark.timeout(90)
async def test_call_log_survives_kill_9_and_shows_the_call_interrupted(relay, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("kiosk-secret\n")
    args = ["--set", f"control.socket={tmp_path / 'ctl.sock'}",
            "--set", f"calllog.path={tmp_path / 'calls.sqlite3'}"]
    start = [sys.executable, "-m", "kioskd", *args, "--set", f"signaling.url={relay.url}",
             "--set", f"signaling.token_file={token_file}", "--set", "video.width=320",
             "--set", "video.height=240"]
    daemon = await asyncio.create_subprocess_exec(*start, stderr=asyncio.subprocess.PIPE)
    caller = ScriptedCaller(relay.url, "alice-secret")
    try:
        await _wait_for_line(daemon.stderr, "connected to signaling server")
        await caller.connect()
        await caller.call("kiosk")  # a first call, ended normally
        await caller.receive_answer()
        await asyncio.wait_for(caller.connected.wait(), 10)
        await caller.hangup()
        await _wait_for_line(daemon.stderr, "ending -> idle")
        await caller.call("kiosk")  # a second one, cut short by kill -9
        await caller.receive_answer()
        await asyncio.wait_for(caller.connected.wait(), 10)
        await _wait_for_line(daemon.stderr, "connecting -> connected")
        # `calls` is answered by the call log's one writer thread, after the writes queued
        # before it: once it shows the answer time, that write is on disk.
        code, out, _ = await _run(KIOSKCTL, *args, "--json", "calls", "--limit", "1")
        assert json.loads(out)["calls"][0]["answered_at"] is not None
        daemon.kill()
        await daemon.wait()

        daemon = await asyncio.create_subprocess_exec(*start, stderr=asyncio.subprocess.PIPE)
        await _wait_for_line(daemon.stderr, "interrupted when kioskd last stopped")
        code, out, err = await _run(KIOSKCTL, *args, "--json", "calls")
        assert code == 0, err
        calls = json.loads(out)["calls"]
        assert [c["outcome"] for c in calls[:2]] == ["interrupted", "answered"]
        assert calls[0]["peer_id"] == "alice" and calls[0]["answered_at"] is not None
        assert calls[1]["reason"] == "hangup" and calls[1]["setup_ms"] > 0
        code, out, _ = await _run(KIOSKCTL, *args, "calls", "--limit", "1")
        assert code == 0 and "interrupted" in out and "Alice (alice)" in out
    finally:
        daemon.kill()
        await daemon.wait()
        await caller.close()


@pytest.mark.netns
@pytest.mark.timeout(60)
async def test_daemon_tells_systemd_ready_status_and_watchdog(relay, tmp_path):
    import socket as sockets
    notify = sockets.socket(sockets.AF_UNIX, sockets.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.setblocking(False)
    token_file = tmp_path / "token"
    token_file.write_text("kiosk-secret\n")
    env = dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "notify.sock"), WATCHDOG_USEC="400000")
    daemon = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kioskd", "--set", f"signaling.url={relay.url}",
        "--set", f"signaling.token_file={token_file}", "--set", f"control.socket={tmp_path}/c",
        "--set", "video.width=320", "--set", "video.height=240", env=env,
        stderr=asyncio.subprocess.DEVNULL)
    loop = asyncio.get_running_loop()
    seen: list[str] = []

    async def until(text: str) -> None:
        async def scan() -> None:
            while not any(text in message for message in seen):
                seen.append((await loop.sock_recv(notify, 4096)).decode())
        await asyncio.wait_for(scan(), 15)

    caller = ScriptedCaller(relay.url, "alice-secret")
    try:
        await until("READY=1")
        await until("STATUS=idle, online")
        await until("WATCHDOG=1")
        await caller.connect()
        await caller.call("kiosk")
        await caller.receive_answer()
        await until("STATUS=in call with Alice")  # the caller's name, as the relay gave it
        daemon.send_signal(signal.SIGTERM)
        await until("STOPPING=1")
        assert await asyncio.wait_for(daemon.wait(), 10) == 0
    finally:
        if daemon.returncode is None:
            daemon.kill()
            await daemon.wait()
        await caller.close()
        notify.close()


@pytest.mark.netns
async def test_selftest_passes_on_synthetic_media_and_names_what_fails(relay, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("kiosk-secret\n")
    base = ["--set", f"signaling.url={relay.url}", "--set", "video.width=320",
            "--set", "video.height=240"]
    code, out, err = await _run(KIOSKCTL, *base, "--set", f"signaling.token_file={token_file}",
                                "--json", "selftest")
    report = json.loads(out)
    assert code == 0 and report["ok"], out + err
    assert {c["name"] for c in report["checks"]} == {
        "camera", "microphone", "speaker", "display", "signaling"}

    token_file.write_text("not-a-token\n")
    code, out, _ = await _run(KIOSKCTL, *base, "--set", f"signaling.token_file={token_file}",
                              "--set", "audio.source=alsa",
                              "--set", "audio.capture_device=no_such_device", "selftest")
    assert code == 1
    assert "FAIL signaling" in out and "unauthorized" in out
    assert "FAIL microphone" in out and "no_such_device" in out
    assert "ok   camera" in out


async def _start_kiosk(relay_url: str, folder: Path, socket: Path, *extra: str):
    folder.mkdir(exist_ok=True)
    token_file = folder / "token"
    token_file.write_text("kiosk-secret\n")
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kioskd", "--set", f"signaling.url={relay_url}",
        "--set", f"signaling.token_file={token_file}", "--set", f"control.socket={socket}",
        "--set", f"calllog.path={folder / 'calls.sqlite3'}", "--set", "video.width=320",
        "--set", "video.height=240", *extra, stderr=asyncio.subprocess.PIPE)


@contextlib.asynccontextmanager
async def kioskd_process(relay_url: str, folder: Path, socket: Path, *extra: str,
                         wait_for: Sequence[str] = ()) -> AsyncIterator[Any]:
    """A kioskd connected to the relay (after the lines `wait_for`); killed if a test fails.
    Its log is read on (`process.log`, a future of the rest) so the pipe never fills."""
    process = await _start_kiosk(relay_url, folder, socket, *extra)
    try:
        for line in [*wait_for, "connected to signaling server"]:
            await _wait_for_line(process.stderr, line)
        process.log = asyncio.ensure_future(process.stderr.read())
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _stop(process: Any, sig: int | None = signal.SIGTERM) -> str:
    """Stop it as systemd (or Ctrl-C) does (None: it has been told); exit code 0; the rest of
    its log."""
    if sig is not None:
        process.send_signal(sig)
    assert await asyncio.wait_for(process.wait(), 10) == 0
    return (await process.log).decode()


@pytest.mark.netns
@pytest.mark.timeout(60)
async def test_a_second_kioskd_refuses_to_start_and_leaves_the_first_one_alone(relay, tmp_path):
    socket = tmp_path / "control.sock"
    async with kioskd_process(relay.url, tmp_path / "first", socket) as first:
        second = await _start_kiosk(relay.url, tmp_path / "second", socket)
        _, err = await asyncio.wait_for(second.communicate(), 30)
        assert second.returncode == 1
        assert f"another kioskd is running: it answers on {socket}" in err.decode()
        code, out, _ = await _run(KIOSKCTL, "--set", f"control.socket={socket}", "status")
        assert code == 0 and "idle, signaling online" in out  # the first one, still there
        await _stop(first)


@pytest.mark.netns
@pytest.mark.timeout(60)
async def test_a_stale_control_socket_is_taken_over(relay, tmp_path):
    import socket as sockets
    path = tmp_path / "control.sock"
    stale = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
    stale.bind(str(path))  # bound, never listening, then gone: as after kill -9
    stale.close()
    async with kioskd_process(relay.url, tmp_path, path, wait_for=[
            f"removing the stale control socket {path}"]) as daemon:
        code, _, _ = await _run(KIOSKCTL, "--set", f"control.socket={path}", "status")
        assert code == 0
        assert "ERROR" not in await _stop(daemon)  # a clean stop


@pytest.mark.netns
@pytest.mark.timeout(60)
async def test_ctrl_c_in_a_call_hangs_up_before_the_kiosk_leaves(relay, tmp_path):
    caller = ScriptedCaller(relay.url, "alice-secret")
    try:
        async with kioskd_process(relay.url, tmp_path, tmp_path / "control.sock") as daemon:
            await caller.connect()
            await caller.call("kiosk")
            await caller.receive_answer()
            await asyncio.wait_for(caller.connected.wait(), 10)
            daemon.send_signal(signal.SIGINT)
            ended = await caller.expect("webrtc:call-end", timeout=10)
            assert ended["from"] == "kiosk" and ended["reason"] == "hangup"
            daemon.send_signal(signal.SIGINT)  # an impatient second Ctrl-C changes nothing
            assert "ERROR" not in await _stop(daemon, None)
        # The call log was closed with the call in it, not left "in progress" (interrupted).
        from kioskd.calllog import CallLog
        [call] = CallLog(tmp_path / "calls.sqlite3").recent()
        assert (call["outcome"], call["reason"]) == ("answered", "hangup")
    finally:
        await caller.close()


@pytest.mark.netns
@pytest.mark.timeout(60)
async def test_the_demo_leaves_no_folder_behind(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = dict(os.environ, TMPDIR=str(temp))
    demo = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kioskd.demo", "--port", "0", "--display", "none",
        "--set", f"control.socket={tmp_path / 'control.sock'}", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        await _wait_for_line(demo.stdout, "kioskd demo is running")
        assert len(list(temp.iterdir())) == 1  # its tokens and call log, while it runs
        demo.send_signal(signal.SIGINT)
        await asyncio.wait_for(demo.communicate(), 15)
        assert demo.returncode == 0
        assert list(temp.iterdir()) == []
    finally:
        if demo.returncode is None:
            demo.kill()
            await demo.wait()


async def test_the_demos_help_needs_nothing_installed():
    # scripts/demo.sh --help prints this before it installs anything.
    code, out, _ = await _run(sys.executable, "-I", "-c", (
        f"import sys; sys.path.insert(0, {str(ROOT / 'device')!r}); sys.argv = ['demo', '--help']\n"
        "import kioskd.demo\n"
        "heavy = [m for m in ('aiortc', 'av', 'socketio', 'numpy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "kioskd.demo.main()"))
    assert code == 0 and "--display" in out


async def test_demo_sh_help_installs_nothing():
    code, out, err = await _run(str(ROOT / "scripts" / "demo.sh"), "--help")
    assert code == 0 and "--display" in out
    assert "setup:" not in out + err  # scripts/setup.sh did not run


def _write_bytes(pid: int) -> int:
    """Bytes the process has sent to storage (not to pipes or sockets): /proc/PID/io."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise AssertionError("no write_bytes in /proc/PID/io")


@pytest.mark.netns
@pytest.mark.timeout(60)
async def test_a_call_in_progress_writes_nothing_to_the_sd_card(relay, tmp_path):
    # An SD card wears with every write: a call writes its call-log rows when it starts,
    # connects and ends, and nothing per frame in between.
    caller = ScriptedCaller(relay.url, "alice-secret")
    try:
        async with kioskd_process(relay.url, tmp_path, tmp_path / "control.sock") as daemon:
            await caller.connect()
            await caller.call("kiosk")
            await caller.receive_answer()
            await asyncio.wait_for(caller.connected.wait(), 10)
            await caller.sink.wait_for_frames(video=5, audio=10, timeout=15)
            code, _, _ = await _run(KIOSKCTL, "--set", f"control.socket={tmp_path}/control.sock",
                                    "--json", "calls", "--limit", "1")  # the rows are written
            assert code == 0
            before = _write_bytes(daemon.pid)
            frames = caller.sink.video_frames
            await caller.sink.wait_for_frames(video=frames + 45, timeout=15)  # 3 s at 15 fps
            assert _write_bytes(daemon.pid) - before == 0
            await _stop(daemon)
    finally:
        await caller.close()
