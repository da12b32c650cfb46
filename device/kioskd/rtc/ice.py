"""The ICE servers a call uses: exactly the configured ones (aiortc would add a public STUN
server when given none), with a fresh TURN credential for each call where a server has
coturn's shared secret.

coturn's `use-auth-secret` ("TURN REST API" credentials): the username is `<expiry>:<name>`,
the expiry a Unix time, and the password base64(HMAC-SHA1(secret, username)). coturn accepts
it until the expiry; the kiosk never stores one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

from aiortc import RTCIceServer

from ..config import Config

CREDENTIAL_TTL_S = 24 * 3600  # longer than any call
CREDENTIAL_NAME = "kioskd"  # the name part of the username, for coturn's logs


def rest_credential(secret: str, now: float, ttl_s: float = CREDENTIAL_TTL_S,
                    name: str = CREDENTIAL_NAME) -> tuple[str, str]:
    """(username, credential) that coturn with `static-auth-secret=secret` accepts until
    `now + ttl_s`."""
    username = f"{int(now + ttl_s)}:{name}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers(config: Config, secrets: Mapping[str, str], now: float) -> list[RTCIceServer]:
    """The call's servers; `secrets` from config.read_turn_secrets."""
    servers = []
    for server in config.rtc.ice_servers:
        username, credential = server.username, server.credential
        if server.secret_file is not None:
            username, credential = rest_credential(secrets[server.secret_file], now)
        servers.append(RTCIceServer(urls=list(server.urls), username=username,
                                    credential=credential))
    return servers
