"""Runs inside the booted kiosk container (tests/image/test_boot.py): checks kioskd the way an
admin and a caller would, writes what it found to /boottest-results/results.json, powers off.

Run by boottest.service after kioskd.service, with the kiosk's own venv python; the scripted
caller is the test suite's (tests/support/caller.py, copied in beside this file).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, "/opt/boottest")
from tests.support.caller import ScriptedCaller  # noqa: E402

RESULTS = Path("/boottest-results")
RELAY = "http://127.0.0.1:8080"
KIOSKCTL = "/opt/kioskd/.venv/bin/kioskctl"


def run(*argv: str) -> dict[str, Any]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    return {"code": done.returncode, "out": done.stdout, "err": done.stderr}


def kioskctl_json(*argv: str) -> Any:
    done = run(KIOSKCTL, "--json", *argv)
    return json.loads(done["out"]) if done["code"] == 0 else done


def wait_for(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)  # polling systemd and the daemon from outside: nothing to wait on
    return False


async def call_the_kiosk() -> dict[str, Any]:
    caller = ScriptedCaller(RELAY, "alice-secret", answer_reoffers=True)  # as browsers do
    await caller.connect()
    try:
        await caller.call("kiosk", "video")
        # Generous: in the arm64 virtual machine every instruction is emulated.
        answer = await caller.receive_answer(timeout=90)
        await asyncio.wait_for(caller.connected.wait(), 90)
        await caller.sink.wait_for_frames(video=10, audio=25, timeout=120)
        received = {"video_frames": caller.sink.video_frames,
                    "audio_frames": caller.sink.audio_frames,
                    "stamps_decoded": caller.sink.stats()["stamps_decoded"]}
        # In a thread: kioskctl takes seconds to start under emulation, and the caller's
        # event loop must go on sending (else the kiosk rightly finds the path lost).
        during = await asyncio.to_thread(kioskctl_json, "status")
        await caller.hangup()  # (the caller starts a new sink for its next call)
        return {"answered_by": answer.get("from"), **received, "status": during}
    finally:
        await caller.close()


def main() -> None:
    results: dict[str, Any] = {}
    active = wait_for(lambda: run("systemctl", "is-active", "kioskd")["out"].strip() == "active",
                      300)
    results["kioskd_active"] = active
    results["online"] = wait_for(
        lambda: (kioskctl_json("status").get("status") or {}).get("signaling") == "online", 120)
    results["status_before"] = kioskctl_json("status")
    results["status_text"] = run(KIOSKCTL, "status")
    try:
        results["call"] = asyncio.run(call_the_kiosk())
    except Exception as exc:  # recorded for the test outside, which fails on it
        results["call"] = {"error": repr(exc)}
    results["idle_again"] = wait_for(
        lambda: (kioskctl_json("status").get("status") or {}).get("state") == "idle", 60)
    results["calls"] = kioskctl_json("calls")
    results["unit"] = run("systemctl", "show", "kioskd", "-p", "ActiveState", "-p", "SubState",
                          "-p", "Type", "-p", "NRestarts", "-p", "NoNewPrivileges",
                          "-p", "ProtectSystem", "-p", "User")["out"]
    # LoadCredential=: systemd's copy of the token, which kioskd reads (token_file is empty).
    credentials = Path("/run/credentials/kioskd.service")
    results["credentials"] = sorted(os.listdir(credentials)) if credentials.exists() else None
    results["token_file_setting"] = (kioskctl_json("config", "show", "--config",
                                                   "/etc/kioskd/kioskd.toml")
                                     .get("signaling", {}).get("token_file"))
    results["provision_unit"] = run("systemctl", "show", "kioskd-provision", "-p", "Result",
                                    "-p", "ActiveState")["out"]
    token = Path("/etc/kioskd/token")
    results["token_mode"] = oct(token.stat().st_mode & 0o777) if token.exists() else None
    results["boot_folder"] = sorted(os.listdir("/boot/firmware/kioskd"))
    results["failed_units"] = run("systemctl", "--failed", "--no-legend", "--plain")["out"]
    results["journal"] = run("journalctl", "-b", "--no-pager", "-u", "kioskd",
                             "-u", "kioskd-provision", "-u", "boottest-relay")["out"][-20000:]
    (RESULTS / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    try:
        main()
    finally:
        subprocess.run(["systemctl", "--no-block", "poweroff"], check=False)
