"""The relay's tokens file: accepted shapes, and errors that name the file and the entry."""

import json

import pytest

from kioskd.relay.tokens import TokensError, User, load_tokens, parse_tokens


def test_string_and_numeric_user_ids_are_kept_as_written(tmp_path):
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"t1": {"userId": "kiosk-1", "username": "Lobby kiosk"},
                                "t2": {"userId": 42, "username": "Alice", "note": "extra ok"}}))
    users = load_tokens(path)
    assert users == {"t1": User("kiosk-1", "Lobby kiosk"), "t2": User(42, "Alice")}
    assert users["t2"].key == "42"


@pytest.mark.parametrize("data,needle", [
    ([], "must be a JSON object"),
    ({}, "no tokens"),
    ({"t": "kiosk-1"}, "entry #1: must be an object"),
    ({"ok": {"userId": "a", "username": "A"}, "t": {"username": "B"}}, "entry #2"),
    ({"t": {"userId": True, "username": "B"}}, "'userId' must be a string or number"),
    ({"t": {"userId": ["a"], "username": "B"}}, "'userId'"),
    ({"t": {"userId": "", "username": "B"}}, "'userId' must be 1.."),
    ({"t": {"userId": "a"}}, "'username' must be a string"),
    ({"t": {"userId": "a", "username": 5}}, "'username'"),
    ({" ": {"userId": "a", "username": "A"}}, "token must be a non-empty string"),
])
def test_bad_entries_are_named_without_leaking_the_token(data, needle):
    with pytest.raises(TokensError) as caught:
        parse_tokens(data, source="conf/tokens.json")
    message = str(caught.value)
    assert message.startswith("conf/tokens.json: ") and needle in message
    assert "\n" not in message


def test_error_names_the_entry_by_user_id_not_by_secret():
    with pytest.raises(TokensError) as caught:
        parse_tokens({"s3cret": {"userId": "kiosk-9", "username": None}}, source="f")
    assert "entry #1 (userId 'kiosk-9')" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_invalid_json_names_file_and_line(tmp_path):
    path = tmp_path / "tokens.json"
    path.write_text('{\n  "t": {"userId": "a", "username": "A"},\n}\n')
    with pytest.raises(TokensError, match=r"tokens\.json: not valid JSON \(line 3"):
        load_tokens(path)


def test_missing_file_is_a_tokens_error(tmp_path):
    with pytest.raises(TokensError, match="cannot read tokens file"):
        load_tokens(tmp_path / "absent.json")
