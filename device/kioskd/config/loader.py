"""Reading configuration: shipped defaults, drop-ins, the main file, `--set` overrides, token.

Precedence, lowest first (a later layer's value for a key replaces an earlier one's; arrays are
replaced whole, never appended to):

1. the shipped defaults (defaults.toml in this package; source "defaults"),
2. `<directory of the main file>/kioskd.conf.d/*.toml`, in file-name order,
3. the main file,
4. each `--set section.key=value`, in command-line order (source "--set").

Unknown sections and keys are reported for every layer; values are validated once, after
merging, and each problem names the layer its value came from.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from . import profiles, schema
from .schema import Config, ConfigError, ConfigIssue

DROPIN_DIR = "kioskd.conf.d"
CREDENTIAL_NAME = "kioskd-token"
SET = "--set"
DEFAULTS = "defaults"

_TOKEN_HELP = "create it with the token from your signaling server's tokens file"


def _parse_toml(text: str, source: str, issues: list[ConfigIssue]) -> dict[str, Any] | None:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # its message ends "(at line L, column C)"
        issues.append(ConfigIssue(source, "", f"TOML syntax error: {exc}"))
        return None


def _read_file(path: Path, source: str, issues: list[ConfigIssue]) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        issues.append(ConfigIssue(source, "", "config file not found"))
        return None
    except IsADirectoryError:
        issues.append(ConfigIssue(source, "", "is a directory, not a config file"))
        return None
    except PermissionError:
        issues.append(ConfigIssue(source, "", "cannot read config file: permission denied"))
        return None
    except UnicodeDecodeError as exc:
        issues.append(ConfigIssue(source, "", f"not UTF-8 text (byte {exc.start}); save it as "
                                              "UTF-8"))
        return None
    except OSError as exc:
        issues.append(ConfigIssue(source, "", f"cannot read config file: {exc.strerror or exc}"))
        return None
    return _parse_toml(text, source, issues)


def _defaults(issues: list[ConfigIssue]) -> dict[str, Any] | None:
    text = resources.files("kioskd.config").joinpath("defaults.toml").read_text(encoding="utf-8")
    return _parse_toml(text, DEFAULTS, issues)


def dropin_files(main: str | os.PathLike[str]) -> list[Path]:
    """The drop-ins that apply to a main file, in the order they are read."""
    folder = Path(main).parent / DROPIN_DIR
    try:
        entries = list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted((p for p in entries
                   if p.suffix == ".toml" and not p.name.startswith(".") and p.is_file()),
                  key=lambda p: p.name)


def parse_override(text: str) -> tuple[dict[str, Any] | None, ConfigIssue | None]:
    """One `--set section.key=value` as layer data, or the issue that makes it unusable.

    The value is parsed as a TOML value if it parses (24, true, ["a", "b"], "quoted");
    otherwise, and always for string-valued keys, it is taken as the plain text typed."""
    name, eq, raw = text.partition("=")
    name = name.strip()
    if not eq or not name:
        return None, ConfigIssue(SET, text, "expected KEY=VALUE, e.g. --set video.fps=24")
    section, dot, key = name.partition(".")
    if not dot or not section or not key:
        owners = [s for s in schema.sections() if name in schema.section_keys(s)]
        if name in schema.sections():
            hint = f"{name}.{next(iter(schema.section_keys(name)))}"
        else:
            hint = f"{owners[0]}.{name}" if owners else "video.fps"
        return None, ConfigIssue(SET, name, f"expected a key of the form section.key, "
                                            f"e.g. --set {hint}={raw or '...'}")
    value: Any = raw
    try:
        parsed = tomllib.loads(f"value = {raw}")
    except tomllib.TOMLDecodeError:
        pass
    else:
        if list(parsed) == ["value"]:
            value = parsed["value"]
    info = schema.find_key(name)
    if info is not None and info.kind.is_text() and not isinstance(value, str):
        value = raw  # --set kiosk.name=42 means the name "42"
    return {section: {key: value}}, None


def _layers(path: Path | None, overrides: Sequence[str],
            issues: list[ConfigIssue]) -> list[tuple[str, dict[str, Any]]]:
    layers: list[tuple[str, dict[str, Any]]] = []
    data = _defaults(issues)
    if data is not None:
        layers.append((DEFAULTS, data))
    if path is not None:
        if not path.exists():
            issues.append(ConfigIssue(str(path), "", "config file not found; create it (the "
                                                     "package's example is config/kioskd.toml) "
                                                     "or give another with --config"))
        else:
            for dropin in dropin_files(path):
                data = _read_file(dropin, str(dropin), issues)
                if data is not None:
                    layers.append((str(dropin), data))
            data = _read_file(path, str(path), issues)
            if data is not None:
                layers.append((str(path), data))
    for text in overrides:
        data, issue = parse_override(text)
        if issue is not None:
            issues.append(issue)
        elif data is not None:
            layers.append((SET, data))
    return layers


def read_board_model(path: str = profiles.BOARD_MODEL_FILE) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as model:
            return model.read()
    except OSError:
        return ""  # not a device-tree machine: a laptop, a server, CI


def _apply_profile(values: dict[str, dict[str, Any]], origins: dict[str, str],
                   board_model: str | None) -> None:
    """Fill the profile's keys where only the shipped defaults set them."""
    name = values.get("media", {}).get("profile", "auto")
    if name == "auto":
        name = profiles.profile_for_board(
            read_board_model() if board_model is None else board_model)
    for section, table in profiles.PROFILES.get(name, {}).items():
        for key, value in table.items():
            if origins.get(f"{section}.{key}", DEFAULTS) == DEFAULTS:
                values.setdefault(section, {})[key] = value
                origins[f"{section}.{key}"] = f"media.profile {name}"


def load_config(path: str | os.PathLike[str] | None = None, overrides: Sequence[str] = (), *,
                env: Mapping[str, str] | None = None,
                board_model: str | None = None) -> Config:
    """Load, merge and validate; raise ConfigError listing every problem found.

    `path` None: the shipped defaults (and overrides) only. `env` (default os.environ) gives
    CREDENTIALS_DIRECTORY: when signaling.token_file is empty and systemd passed a credential,
    token_file becomes `$CREDENTIALS_DIRECTORY/kioskd-token`. A relative token_file is made
    absolute against the main file's directory. The token itself is read by `read_token`.
    `board_model` (default: read from the device tree) picks the profile for media.profile auto.
    """
    if isinstance(overrides, str):
        overrides = [overrides]
    main = Path(path) if path is not None else None
    issues: list[ConfigIssue] = []
    values: dict[str, dict[str, Any]] = {}
    origins: dict[str, str] = {}
    sources = [DEFAULTS]
    if main is not None:
        sources += [*map(str, dropin_files(main)), str(main)]
    for source, data in _layers(main, overrides, issues):
        known, unknown = schema.check_layer(data, source)
        issues += unknown
        for section, table in known.items():
            for key, value in table.items():
                values.setdefault(section, {})[key] = value
                origins[f"{section}.{key}"] = source
    _apply_profile(values, origins, board_model)
    try:
        config = schema.build(values, origins,
                              path=Path(os.path.abspath(main)) if main is not None else None)
    except ConfigError as exc:
        issues += exc.issues
        config = None
    if config is not None:
        issues += _backend_issues(config, origins)
    if issues or config is None:
        # Group by layer, lowest first (defaults, drop-ins, main file, --set), as read.
        order = {source: i for i, source in enumerate([*sources, SET])}
        raise ConfigError(sorted(issues, key=lambda issue: order.get(issue.source, 0)))
    located = token_path(config, env)
    if located is not None and str(located) != config.signaling.token_file:
        config = dataclasses.replace(config, signaling=dataclasses.replace(
            config.signaling, token_file=str(located)))
    return config


def _backend_issues(config: Config, origins: Mapping[str, str]) -> list[ConfigIssue]:
    """Unknown back-end names, and back ends whose modules are not installed."""
    # Imported here, not at the top: the registry imports this package's schema.
    from ..media import registry

    return registry.config_issues(config, origins)


def check_config_file(path: str | os.PathLike[str] | None,
                      overrides: Sequence[str] = ()) -> list[ConfigIssue]:
    """Every problem with a config file (and its drop-ins); [] if it is good."""
    try:
        load_config(path, overrides)
    except ConfigError as exc:
        return list(exc.issues)
    return []


def token_path(config: Config, env: Mapping[str, str] | None = None) -> Path | None:
    """Where the token is read from: signaling.token_file (relative to the main file's
    directory), else $CREDENTIALS_DIRECTORY/kioskd-token, else None."""
    env = os.environ if env is None else env
    configured = config.signaling.token_file
    if configured:
        return secret_path(config, configured)
    credentials = env.get("CREDENTIALS_DIRECTORY")
    if credentials:
        return Path(credentials.split(":")[0]) / CREDENTIAL_NAME
    return None


def read_token(config: Config, env: Mapping[str, str] | None = None) -> str:
    """The signaling token, stripped of surrounding whitespace. The error never shows it."""
    key = "signaling.token_file"
    path = token_path(config, env)
    if path is None:
        where = str(config.path) if config.path is not None else DEFAULTS
        raise ConfigError(ConfigIssue(
            where, key, "no token file: set signaling.token_file to a file holding this kiosk's "
                        f"token ({_TOKEN_HELP}), or pass it to the service with systemd "
                        f"LoadCredential={CREDENTIAL_NAME}:PATH"))
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problem = f"token file not found; {_TOKEN_HELP} (mode 0600, owned by the kioskd user)"
    except PermissionError:
        problem = ("cannot read the token file: permission denied; make it readable by the user "
                   "kioskd runs as (and nobody else)")
    except IsADirectoryError:
        problem = f"is a directory; signaling.token_file must name a file ({_TOKEN_HELP})"
    except UnicodeDecodeError:
        problem = f"the token file is not text; {_TOKEN_HELP}"
    except OSError as exc:
        problem = f"cannot read the token file: {exc.strerror or exc}"
    else:
        token = text.strip()
        if not token:
            problem = f"the token file is empty; put the token in it ({_TOKEN_HELP})"
        elif "\n" in token or "\r" in token:
            problem = "the token file holds more than one line; put only the token in it"
        else:
            return token
    raise ConfigError(ConfigIssue(source, key, problem))


def config_as_dict(config: Config, mask_secrets: bool = True) -> dict[str, dict[str, Any]]:
    """Every section and key as plain data (lists, dicts), e.g. for `kioskctl config show`.
    ICE server credentials are shown as "***" unless mask_secrets is False."""
    return schema.as_dict(config, mask_secrets)


def secret_path(config: Config, configured: str) -> Path:
    """A secret file named in the config, relative to the main file's directory."""
    path = Path(configured).expanduser()
    if not path.is_absolute() and config.path is not None:
        path = config.path.parent / path
    return path


def read_turn_secrets(config: Config) -> dict[str, str]:
    """The shared secret of each TURN server that names a secret_file: {secret_file: secret}.
    Read once at start (and reload), like the token; the error never shows a secret."""
    secrets: dict[str, str] = {}
    issues: list[ConfigIssue] = []
    for index, server in enumerate(config.rtc.ice_servers):
        if server.secret_file is None or server.secret_file in secrets:
            continue
        path = secret_path(config, server.secret_file)
        key = f"rtc.ice_servers[{index}].secret_file"
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            issues.append(ConfigIssue(str(path), key, f"cannot read the TURN secret: "
                                                      f"{exc.strerror or exc}; put coturn's "
                                                      "static-auth-secret there, readable by "
                                                      "the kioskd user (root:kioskd, mode 0640)"))
            continue
        if not secret or "\n" in secret:
            issues.append(ConfigIssue(str(path), key, "the TURN secret file must hold the "
                                                      "secret on one line"))
            continue
        secrets[server.secret_file] = secret
    if issues:
        raise ConfigError(issues)
    return secrets
