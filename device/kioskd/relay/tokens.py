"""The relay's tokens file: `{"<token>": {"userId": "kiosk-1", "username": "Lobby kiosk"}, ...}`.

Checked once at start so that a typo stops the relay with one sentence naming the file and the
entry, instead of surfacing later as a user who cannot connect. Tokens are secrets: errors name
an entry by its position and userId, never by the token itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import protocol

UserId = str | int


class TokensError(ValueError):
    """A tokens file (or mapping) that cannot be used. The message is one log-ready sentence."""


@dataclass(frozen=True)
class User:
    user_id: UserId  # kept as written (string or number): peers see it exactly so in `from`
    username: str

    @property
    def key(self) -> str:
        # Clients may address 42 as "42" or the reverse (protocol.same_peer): index by text.
        return str(self.user_id)


def parse_tokens(data: Any, source: str = "tokens") -> dict[str, User]:
    """Validate a decoded tokens mapping; `source` names it in errors (usually the file path)."""
    if not isinstance(data, Mapping):
        raise TokensError(f"{source}: must be a JSON object of token -> {{userId, username}}")
    if not data:
        raise TokensError(f"{source}: has no tokens, so nobody could connect")
    users: dict[str, User] = {}
    for position, (token, entry) in enumerate(data.items(), start=1):
        label = f"entry #{position}"
        if isinstance(entry, Mapping) and "userId" in entry:
            label += f" (userId {entry['userId']!r})"
        if not isinstance(token, str) or not token.strip():
            raise TokensError(f"{source}: {label}: the token must be a non-empty string")
        if not isinstance(entry, Mapping):
            raise TokensError(f"{source}: {label}: must be an object with userId and username")
        try:
            user_id = protocol.parse_peer_id(entry.get("userId"), "userId", label)
        except protocol.ProtocolError as exc:
            raise TokensError(f"{source}: {exc}") from None
        username = entry.get("username")
        if not isinstance(username, str) or len(username) > protocol.MAX_NAME_CHARS:
            raise TokensError(
                f"{source}: {label}: 'username' must be a string of at most "
                f"{protocol.MAX_NAME_CHARS} characters"
            )
        users[token] = User(user_id=user_id, username=username)
    return users


def load_tokens(path: str | Path) -> dict[str, User]:
    """Read and validate a tokens file, or raise TokensError naming the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TokensError(f"{path}: cannot read tokens file: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TokensError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    return parse_tokens(data, source=str(path))
