"""The kiosk's own inputs drive real calls: a GPIO button dials call.contact through the relay,
a tap on Answer in manual mode answers, keys mute and hang up. Screen under SDL's dummy driver,
GPIO on gpiozero's own mock pin factory."""

from __future__ import annotations

import asyncio

import pytest

from kioskd.call.states import State
from tests.integration.conftest import running_kiosk
from tests.support.screen_probe import ScreenProbe

pytestmark = [pytest.mark.netns, pytest.mark.timeout(60)]
pygame = pytest.importorskip("pygame")


@pytest.fixture(autouse=True)
def dummy_video(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")


async def test_gpio_call_button_dials_the_contact(relay, alice, mock_pins):
    async with running_kiosk(relay.url, "display.mode=window", "call.contact=alice",
                             "input.gpio_call_pin=17") as kiosk:
        await ScreenProbe(kiosk.screen).wait_for_screen("idle")
        mock_pins.pin(17).drive_low()  # the button pulls the pin to ground
        mock_pins.pin(17).drive_high()
        offer = await alice.answer_incoming()
        assert offer["from"] == "kiosk"
        await kiosk.wait_for_state(State.CONNECTED)


async def test_tap_on_answer_in_manual_mode_answers_then_keys_mute_and_hang_up(relay, alice):
    async with running_kiosk(relay.url, "display.mode=window", "answer.mode=manual") as kiosk:
        probe = ScreenProbe(kiosk.screen)
        await alice.call("kiosk")
        await kiosk.wait_for_state(State.RINGING)
        await probe.wait_for_screen("incoming")
        answer = next(b for b in probe.layout().buttons if b.command == "answer")
        pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=answer.center,
                                             button=1, touch=False))
        await alice.receive_answer()
        await kiosk.wait_for_state(State.CONNECTED)
        await probe.wait_for_screen("in_call")

        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_m, mod=0,
                                             unicode="m", scancode=0))
        async with kiosk.status_keeper.state_changed:
            await asyncio.wait_for(kiosk.status_keeper.state_changed.wait_for(lambda: kiosk.local_media.off["audio"]), 5)
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_h, mod=0,
                                             unicode="h", scancode=0))
        ended = await alice.expect("webrtc:call-end")
        assert ended["reason"] == "hangup"
        await kiosk.wait_for_state(State.IDLE)
        await probe.wait_for_screen("outcome")  # "Call ended", then idle again


async def test_a_slow_connection_shows_the_connecting_screen(relay, alice):
    # The screen holds "connecting" back for a moment (drawing it would slow the answer);
    # a connection that takes longer must still show it. Without the caller's candidates,
    # this one never completes.
    async with running_kiosk(relay.url, "display.mode=window") as kiosk:
        probe = ScreenProbe(kiosk.screen)
        await probe.wait_for_screen("idle")
        await alice.call("kiosk", trickle=False)
        await kiosk.wait_for_state(State.CONNECTING)
        await probe.wait_for_screen("connecting")
