"""TURN settings: coturn's shared-secret credentials, made per call; the secret read like the
token and never shown."""

from __future__ import annotations

import pytest

from kioskd.config import ConfigError, config_as_dict, load_config, read_turn_secrets
from kioskd.rtc.ice import ice_servers, rest_credential

TURN = '{ urls = "turn:turn.example.org:3478?transport=tcp", secret_file = "turn-secret" }'


def test_the_credential_is_coturns_use_auth_secret_scheme():
    # openssl: printf 1700086400:kioskd | openssl dgst -sha1 -hmac turn-shared-secret -binary | base64
    assert rest_credential("turn-shared-secret", now=1_700_000_000, ttl_s=86400) == (
        "1700086400:kioskd", "m3rSMHnsUPu1PnbhXRSEXlxoPUY=")


def test_each_call_gets_a_fresh_credential_and_static_ones_pass_through(tmp_path):
    main = tmp_path / "kioskd.toml"
    main.write_text(f'[rtc]\nice_servers = [{TURN}, {{ urls = "turn:b.example.org", '
                    'username = "u", credential = "p" }, { urls = "stun:s.example.org" }]\n')
    (tmp_path / "turn-secret").write_text("s3cret\n")
    config = load_config(main)
    secrets = read_turn_secrets(config)  # relative to the main file's folder
    assert secrets == {"turn-secret": "s3cret"}
    first, static, stun = ice_servers(config, secrets, now=1000.0)
    assert first.urls == ["turn:turn.example.org:3478?transport=tcp"]
    assert first.username == f"{1000 + 86400}:kioskd"
    assert first.credential == rest_credential("s3cret", 1000.0)[1]
    assert ice_servers(config, secrets, now=2000.0)[0].username != first.username
    assert (static.username, static.credential) == ("u", "p")
    assert stun.username is None


def test_the_secret_is_never_shown(tmp_path):
    main = tmp_path / "kioskd.toml"
    main.write_text(f"[rtc]\nice_servers = [{TURN}]\n")
    (tmp_path / "turn-secret").write_text("s3cret\n")
    shown = str(config_as_dict(load_config(main)))
    assert "turn-secret" in shown and "s3cret" not in shown


@pytest.mark.parametrize("entry, message", [
    ('{ urls = "stun:s.example.org", secret_file = "x" }', "secret_file is for TURN servers"),
    ('{ urls = "turn:t.example.org", secret_file = "x", username = "u", credential = "p" }',
     "not both"),
    ('{ urls = "turn:t.example.org" }', "or secret_file"),
])
def test_turn_settings_that_cannot_work_are_refused(entry, message):
    with pytest.raises(ConfigError) as caught:
        load_config(None, [f"rtc.ice_servers=[{entry}]"])
    assert message in str(caught.value)


def test_a_missing_or_empty_secret_is_a_config_error_that_says_what_to_do(tmp_path):
    main = tmp_path / "kioskd.toml"
    main.write_text(f"[rtc]\nice_servers = [{TURN}]\n")
    with pytest.raises(ConfigError) as caught:
        read_turn_secrets(load_config(main))
    assert "rtc.ice_servers[0].secret_file" in str(caught.value)
    assert "static-auth-secret" in str(caught.value)
    (tmp_path / "turn-secret").write_text("\n")
    with pytest.raises(ConfigError, match="one line"):
        read_turn_secrets(load_config(main))
