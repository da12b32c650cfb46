"""TURN: the kiosk allocates a relay on a real coturn over UDP or TCP, with a credential it
makes from coturn's shared secret for each call (use-auth-secret), and the call connects.
(aiortc uses one TURN URL per connection: the first in rtc.ice_servers.)"""

from __future__ import annotations

import json
import re
import shutil

import pytest

from kioskd.call.states import State
from tests.integration.conftest import running_kiosk
from tests.support.coturn import INSTALL_HINT, running_coturn

pytestmark = [pytest.mark.netns, pytest.mark.timeout(60)]


@pytest.fixture
def coturn(tmp_path):
    if shutil.which("turnserver") is None:
        pytest.skip(INSTALL_HINT)
    with running_coturn(tmp_path) as turn:
        yield turn


def turn_servers(urls: list[str], secret_file) -> str:
    return f'rtc.ice_servers=[{{ urls = {json.dumps(urls)}, secret_file = "{secret_file}" }}]'


def relay_candidates(sdp: str) -> list[str]:
    return [line for line in sdp.splitlines() if "typ relay" in line]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_relays_with_a_credential_from_the_shared_secret(relay, alice, coturn, tmp_path,
                                                               transport):
    secret_file = tmp_path / "turn-secret"
    secret_file.write_text(coturn.secret + "\n")
    url = f"turn:{coturn.host}:{coturn.port}?transport={transport}"
    async with running_kiosk(relay.url, turn_servers([url], secret_file)) as kiosk:
        await alice.call("kiosk", "video")
        answer = await alice.receive_answer()
        assert relay_candidates(answer["answer"]["sdp"]), answer["answer"]["sdp"]
        await kiosk.wait_for_state(State.CONNECTED)
        await alice.sink.wait_for_frames(video=5, audio=10, timeout=15)
        shown = kiosk_log_text(kiosk)
    log = coturn.log.read_text(errors="replace")
    assert ":kioskd>" in log and "ALLOCATE processed, success" in log  # <expiry>:kioskd
    if transport == "tcp":  # the kiosk's session was a TCP connection
        assert re.search(r"user <\d+:kioskd>.*reason: TCP connection closed", log), log
    assert coturn.secret not in shown and str(secret_file) in shown


def kiosk_log_text(kiosk) -> str:
    """What the kiosk would show an admin: its status and its config as kioskctl shows it."""
    from kioskd.config import config_as_dict

    return json.dumps(kiosk.status()) + json.dumps(config_as_dict(kiosk.config))


async def test_a_wrong_secret_gets_no_relay_and_the_call_still_connects(
        relay, alice, coturn, tmp_path):
    secret_file = tmp_path / "turn-secret"
    secret_file.write_text("not-the-secret\n")
    async with running_kiosk(relay.url, turn_servers(coturn.urls()[:1], secret_file)) as kiosk:
        await alice.call("kiosk", "video")
        answer = await alice.receive_answer()
        assert relay_candidates(answer["answer"]["sdp"]) == []  # coturn refused (401)
        await kiosk.wait_for_state(State.CONNECTED)  # host candidates on loopback still do
