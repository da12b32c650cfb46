"""A headless Chromium (Debian's, driven by Playwright) on the caller page of a real relay.

The browser is never downloaded: scripts/setup.sh --test installs Debian's `chromium` and the
`playwright` package, and the tests skip with that hint when either is missing. Chromium runs
in the suite's private network namespace like every other WebRTC peer, with a fake camera and
microphone and no permission prompts.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from kioskd.relay.server import running_relay
from tests.integration.conftest import TOKENS

try:
    from playwright.async_api import Page, async_playwright, expect
except ImportError:  # the tests skip; see missing()
    async_playwright = expect = Page = None  # type: ignore[assignment,misc]

log = logging.getLogger("caller-page")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--use-fake-ui-for-media-stream",  # grant camera and microphone without a prompt
    "--use-fake-device-for-media-stream",  # a test pattern and a beep instead of devices
    "--allow-loopback-in-peer-connection",  # the namespace has nothing but loopback
    "--no-sandbox",  # running as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
UI_TIMEOUT_MS = 15_000  # a whole call setup, ICE and DTLS included, fits well inside


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if async_playwright is None:
        return "needs the playwright Python package (scripts/setup.sh --test)"
    if not CHROMIUM.exists():
        return f"needs Debian's chromium at {CHROMIUM} (scripts/setup.sh --test)"
    return None


@pytest.fixture
async def relay():
    async with running_relay(TOKENS) as relay:
        yield relay


@pytest.fixture
async def browser(tmp_path):
    """A fresh Chromium (own profile directory) for one test."""
    reason = missing()
    if reason:
        pytest.skip(reason)
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
        )
        try:
            yield context
        finally:
            await context.close()


@pytest.fixture
def open_caller(browser, relay):
    """open_caller(token=..., call=..., ring=..., autoanswer=...) -> a signed-in caller page."""

    async def open_page(**params: Any) -> Page:
        page = browser.pages[0] if browser.pages else await browser.new_page()
        page.on("console", lambda message: log.info("%s: %s", message.type, message.text))
        page.on("pageerror", lambda error: log.error("page error: %s", error))
        page.on("response", lambda response: response.status >= 400 and log.warning(
            "HTTP %s for %s", response.status, response.url))
        await page.goto(f"{relay.url}/?{urlencode(params)}")
        await expect(page.locator("#me")).to_have_text(re.compile("^signed in"),
                                                      timeout=UI_TIMEOUT_MS)
        return page

    return open_page


def negotiated(kiosk) -> dict[str, dict[str, list[str]]]:
    """The codecs of the kiosk's side of the SDP (its answer, or its offer as caller) and the
    peer's, per media kind: the first of each m-line's list is the one used."""
    pc = kiosk.runner.session.pc

    def codecs(sdp: str) -> dict[str, list[str]]:
        kinds: dict[str, list[str]] = {}
        kind = ""
        for line in sdp.splitlines():
            if line.startswith("m="):
                kind = line[2:].split()[0]
                kinds.setdefault(kind, [])
            elif match := re.match(r"a=rtpmap:\d+ ([^/]+)/", line):
                if match.group(1) not in ("rtx", "red", "ulpfec", "telephone-event", "CN"):
                    kinds[kind].append(match.group(1))
        return kinds

    return {"kiosk": codecs(pc.localDescription.sdp), "peer": codecs(pc.remoteDescription.sdp)}
