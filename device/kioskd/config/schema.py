"""What a kioskd configuration may contain. Pure: dataclasses and validation, no I/O.

Every key is declared once, as one line in its section's frozen dataclass:

    fps: int = key(24, Integer(1, 60, unit="frames per second"), "frame rate sent to the caller")

That one line gives the attribute (`config.video.fps`), its default, its validation and its
documentation (see `reference()`). To add a key, add such a line, add it to defaults.toml and
to the example config/kioskd.toml; the tests check that all three agree.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# -- issues and errors ------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigIssue:
    """One problem: where the offending value came from, which key, and what is allowed."""

    source: str  # a file path, "--set" or "defaults"
    key: str  # dotted, e.g. "answer.mode"; "" for a problem with the whole file
    message: str

    def __str__(self) -> str:
        if self.key:
            return f"{self.source}: {self.key}: {self.message}"
        return f"{self.source}: {self.message}"


class ConfigError(Exception):
    """All the problems found, one line each: `FILE: KEY: MESSAGE`."""

    def __init__(self, issues: Iterable[ConfigIssue] | ConfigIssue) -> None:
        if isinstance(issues, ConfigIssue):
            issues = [issues]
        self.issues: tuple[ConfigIssue, ...] = tuple(issues)
        super().__init__(self.issues)

    def __str__(self) -> str:
        return "\n".join(str(issue) for issue in self.issues)


# -- showing values the way they are written in TOML ------------------------------------------


def toml_value(value: Any) -> str:
    """A value as it would be written in a TOML file (used in messages and generated text)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, IceServer):
        return toml_value(value.as_dict())
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }" \
            if value else "{}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return repr(value)


def _what(value: Any) -> str:
    """The TOML type of a value, for "got ..." messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, (datetime.date, datetime.time)):
        return "a date/time"
    return type(value).__name__


def _got(value: Any) -> str:
    return f"{toml_value(value)} is {_what(value)}"


def _quoted_list(items: Iterable[str]) -> str:
    return ", ".join(json.dumps(item) for item in items)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


# -- kinds of value ---------------------------------------------------------------------------


class Invalid(Exception):
    """Raised by a kind's `convert`: a list of (key suffix, message), e.g. ("[0].urls", ...)."""

    def __init__(self, *problems: tuple[str, str]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.problems = list(problems)


class Kind:
    """How one key's TOML value is checked and turned into its Python value."""

    unit: str = ""

    def convert(self, raw: Any) -> Any:  # pragma: no cover - every kind overrides it
        raise NotImplementedError

    def describe(self) -> str:
        """What is allowed, for docs and messages, e.g. "a whole number from 1 to 60"."""
        raise NotImplementedError  # pragma: no cover

    def is_text(self) -> bool:
        """True if a `--set` value should be kept as typed rather than parsed as TOML."""
        return False


@dataclass(frozen=True)
class Text(Kind):
    """A string. `numbers_ok`: an integer is accepted and stored as its decimal string."""

    non_empty: bool = False
    prefixes: tuple[str, ...] = ()
    numbers_ok: bool = False
    unit: str = ""

    def describe(self) -> str:
        text = "a non-empty string" if self.non_empty else "a string"
        if self.prefixes:
            text += " starting with " + " or ".join(self.prefixes)
        if self.numbers_ok:
            text += " (a number is taken as a string)"
        return text

    def convert(self, raw: Any) -> str:
        if self.numbers_ok and isinstance(raw, int) and not isinstance(raw, bool):
            raw = str(raw)
        if not isinstance(raw, str):
            raise Invalid(("", f"{_got(raw)}; use {self.describe()}"))
        if self.non_empty and not raw.strip():
            raise Invalid(("", f"must not be empty; use {self.describe()}"))
        if self.prefixes and not raw.lower().startswith(self.prefixes):
            raise Invalid(("", f"{toml_value(raw)} is not allowed; use {self.describe()}"))
        return raw

    def is_text(self) -> bool:
        return True


@dataclass(frozen=True)
class Flag(Kind):
    unit: str = ""

    def describe(self) -> str:
        return "true or false"

    def convert(self, raw: Any) -> bool:
        if not isinstance(raw, bool):
            raise Invalid(("", f"{_got(raw)}; use true or false (without quotes)"))
        return raw


def _range_text(lo: float | None, hi: float | None, lo_open: bool) -> str:
    def num(x: float) -> str:
        return str(int(x)) if float(x).is_integer() else str(x)

    if lo is not None and hi is not None:
        if lo_open:
            return f"greater than {num(lo)} and at most {num(hi)}"
        return f"from {num(lo)} to {num(hi)}"
    if lo is not None:
        return f"greater than {num(lo)}" if lo_open else f"of at least {num(lo)}"
    if hi is not None:
        return f"of at most {num(hi)}"
    return ""


@dataclass(frozen=True)
class Integer(Kind):
    lo: int | None = None
    hi: int | None = None
    unit: str = ""

    def describe(self) -> str:
        text = f"a whole number {_range_text(self.lo, self.hi, False)}".rstrip()
        return f"{text} ({self.unit})" if self.unit else text

    def convert(self, raw: Any) -> int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            if isinstance(raw, float) and raw.is_integer():
                raise Invalid(("", f"{toml_value(raw)} is a float; use {self.describe()}, "
                                   f"written without a decimal point, e.g. {int(raw)}"))
            raise Invalid(("", f"{_got(raw)}; use {self.describe()}"))
        if (self.lo is not None and raw < self.lo) or (self.hi is not None and raw > self.hi):
            raise Invalid(("", f"{raw} is out of range; use {self.describe()}"))
        return raw


@dataclass(frozen=True)
class Number(Kind):
    """A float; integers are accepted. `lo_open`: the lower bound itself is not allowed."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    unit: str = ""

    def describe(self) -> str:
        text = f"a number {_range_text(self.lo, self.hi, self.lo_open)}".rstrip()
        return f"{text} ({self.unit})" if self.unit else text

    def convert(self, raw: Any) -> float:
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise Invalid(("", f"{_got(raw)}; use {self.describe()}"))
        value = float(raw)
        if not math.isfinite(value):
            raise Invalid(("", f"{toml_value(value)} is not a finite number; "
                               f"use {self.describe()}"))
        too_low = self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo)
        too_high = self.hi is not None and value > self.hi
        if too_low or too_high:
            raise Invalid(("", f"{toml_value(raw)} is out of range; use {self.describe()}"))
        return value


@dataclass(frozen=True)
class OneOf(Kind):
    """One of a few words; matched case-insensitively, stored as written here."""

    choices: tuple[str, ...] = ()
    unit: str = ""

    def describe(self) -> str:
        return f"one of {_quoted_list(self.choices)}"

    def convert(self, raw: Any) -> str:
        if isinstance(raw, str):
            for choice in self.choices:
                if raw.strip().lower() == choice.lower():
                    return choice
            return self._fail(f"{toml_value(raw)} is not allowed")
        return self._fail(_got(raw))

    def _fail(self, what: str) -> str:
        raise Invalid(("", f"{what}; use {self.describe()}"))

    def is_text(self) -> bool:
        return True


@dataclass(frozen=True)
class TextList(Kind):
    """An array of strings, stored as a tuple. `numbers_ok`: integers become strings."""

    numbers_ok: bool = False
    unit: str = ""

    def describe(self) -> str:
        return "an array of strings" + (" or numbers" if self.numbers_ok else "")

    def convert(self, raw: Any) -> tuple[str, ...]:
        if isinstance(raw, (str, int)) and not isinstance(raw, bool):
            raise Invalid(("", f"{_got(raw)}; use {self.describe()}, e.g. "
                               f"[{toml_value(str(raw))}]"))
        if not isinstance(raw, list):
            raise Invalid(("", f"{_got(raw)}; use {self.describe()}"))
        out: list[str] = []
        problems: list[tuple[str, str]] = []
        for i, item in enumerate(raw):
            if self.numbers_ok and isinstance(item, int) and not isinstance(item, bool):
                item = str(item)
            if not isinstance(item, str) or not item.strip():
                problems.append((f"[{i}]", f"{_got(item)}; each entry must be a non-empty "
                                           f"string" + (" or a number" if self.numbers_ok else "")))
                continue
            out.append(item)
        if problems:
            raise Invalid(*problems)
        return tuple(out)


@dataclass(frozen=True)
class Codecs(Kind):
    """A non-empty array of codec names, case-insensitive, stored upper-case, no duplicates."""

    choices: tuple[str, ...] = ()
    unit: str = ""

    def describe(self) -> str:
        return (f"a non-empty array of codec names, each one of {_quoted_list(self.choices)}, "
                "in order of preference")

    def convert(self, raw: Any) -> tuple[str, ...]:
        if isinstance(raw, str):
            raise Invalid(("", f"{_got(raw)}; use {self.describe()}, e.g. "
                               f"[{toml_value(raw.upper())}]"))
        if not isinstance(raw, list):
            raise Invalid(("", f"{_got(raw)}; use {self.describe()}"))
        if not raw:
            raise Invalid(("", f"must not be empty; use {self.describe()}"))
        out: list[str] = []
        problems: list[tuple[str, str]] = []
        for i, item in enumerate(raw):
            name = item.strip().upper() if isinstance(item, str) else None
            if name not in self.choices:
                what = f"{toml_value(item)} is not allowed" if isinstance(item, str) \
                    else _got(item)
                problems.append((f"[{i}]", f"{what}; use one of {_quoted_list(self.choices)}"))
            elif name in out:
                problems.append((f"[{i}]", f"{toml_value(item)} is listed twice; "
                                           "list each codec once"))
            else:
                out.append(name)
        if problems:
            raise Invalid(*problems)
        return tuple(out)


@dataclass(frozen=True)
class IceServer:
    """One STUN or TURN server, as RTCIceServer wants it. A TURN server has a static
    username and credential, or `secret_file`: coturn's shared secret (use-auth-secret), from
    which the kiosk makes a fresh time-limited credential for each call (rtc/ice.py)."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None
    secret_file: str | None = None

    def as_dict(self, mask_secrets: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"urls": list(self.urls)}
        if self.username is not None:
            out["username"] = self.username
        if self.credential is not None:
            out["credential"] = "***" if mask_secrets else self.credential
        if self.secret_file is not None:
            out["secret_file"] = self.secret_file  # a path; the secret itself is never shown
        return out


ICE_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")


@dataclass(frozen=True)
class IceServers(Kind):
    unit: str = ""

    def describe(self) -> str:
        return ("an array of tables { urls = URL or [URL, ...], username = \"...\", "
                "credential = \"...\" } or, for TURN with a shared secret, { urls = ..., "
                "secret_file = \"...\" }, each URL starting with " + ", ".join(ICE_SCHEMES))

    def convert(self, raw: Any) -> tuple[IceServer, ...]:
        if not isinstance(raw, list):
            raise Invalid(("", f"{_got(raw)}; use {self.describe()}"))
        servers: list[IceServer] = []
        problems: list[tuple[str, str]] = []
        for i, entry in enumerate(raw):
            where = f"[{i}]"
            if not isinstance(entry, Mapping):
                problems.append((where, f"{_got(entry)}; each server is a table like "
                                        '{ urls = "stun:stun.example.org:3478" }'))
                continue
            known = ("urls", "username", "credential", "secret_file")
            for name in entry:
                if name not in known:
                    problems.append((f"{where}.{name}", f"unknown key{did_you_mean(name, known)}"
                                                        f"; known keys: {', '.join(known)}"))
            urls = self._urls(entry.get("urls"), f"{where}.urls", problems)
            extras: dict[str, str | None] = {}
            for name in ("username", "credential", "secret_file"):
                value = entry.get(name)
                if value is not None and not isinstance(value, str):
                    problems.append((f"{where}.{name}", f"{_got(value)}; use a string"))
                    value = None
                extras[name] = value
            problem = self._credentials_problem(urls, extras)
            if problem:
                problems.append((where, problem))
            if urls:
                servers.append(IceServer(urls, extras["username"], extras["credential"],
                                         extras["secret_file"]))
        if problems:
            raise Invalid(*problems)
        return tuple(servers)

    @staticmethod
    def _credentials_problem(urls: tuple[str, ...], extras: dict[str, str | None]) -> str | None:
        turn = any(u.lower().startswith(("turn:", "turns:")) for u in urls)
        static = extras["username"] or extras["credential"]
        if extras["secret_file"] is not None:
            if not turn:
                return "secret_file is for TURN servers (turn: or turns: URLs)"
            if static:
                return "give username and credential, or secret_file, not both"
            return None
        if turn and (not extras["username"] or not extras["credential"]):
            return ("a TURN server needs both username and credential, or secret_file (a "
                    "file holding coturn's static-auth-secret)")
        return None

    @staticmethod
    def _urls(raw: Any, where: str, problems: list[tuple[str, str]]) -> tuple[str, ...]:
        example = 'e.g. urls = "stun:stun.example.org:3478"'
        if raw is None:
            problems.append((where, f"missing; every server needs urls, {example}"))
            return ()
        items = [raw] if isinstance(raw, str) else raw
        if not isinstance(items, list) or not items:
            what = "must not be empty" if isinstance(items, list) else _got(raw)
            problems.append((where, f"{what}; use a URL or an array of URLs, {example}"))
            return ()
        ok = True
        for j, url in enumerate(items):
            suffix = "" if isinstance(raw, str) else f"[{j}]"
            if not isinstance(url, str):
                problems.append((where + suffix, f"{_got(url)}; use a string, {example}"))
                ok = False
            elif not url.lower().startswith(ICE_SCHEMES):
                problems.append((where + suffix, f"{toml_value(url)} is not allowed; a URL must "
                                                 f"start with {', '.join(ICE_SCHEMES)}"))
                ok = False
        return tuple(items) if ok else ()


# -- the keys ---------------------------------------------------------------------------------


def key(default: Any, kind: Kind, doc: str) -> Any:
    """Declare one key: its default, its kind of value and one line of documentation."""
    return field(default=default, metadata={"kind": kind, "doc": doc})


@dataclass(frozen=True)
class KioskSection:
    """This kiosk."""

    name: str = key("Kiosk", Text(non_empty=True), "name shown to callers and in the logs")


@dataclass(frozen=True)
class SignalingSection:
    """The signaling server the kiosk registers with."""

    url: str = key("http://127.0.0.1:8080", Text(prefixes=("http://", "https://")),
                   "address of the signaling server")
    token_file: str = key("", Text(), "file holding this kiosk's token; empty: "
                                      "$CREDENTIALS_DIRECTORY/kioskd-token (systemd LoadCredential)"
                                      "; a relative path is relative to the main config file")
    verify_tls: bool = key(True, Flag(), "check the server's TLS certificate (https only)")
    connect_timeout_s: float = key(10.0, Number(0, lo_open=True, unit="seconds"),
                                   "give up one connection attempt after this long")


@dataclass(frozen=True)
class AnswerSection:
    """Which incoming calls are answered, and when."""

    mode: str = key("always", OneOf(("always", "allowlist", "manual")),
                    "always: answer every call; allowlist: answer users in answer.allow, refuse "
                    "others; manual: ring until someone answers at the kiosk")
    allow: tuple[str, ...] = key((), TextList(numbers_ok=True),
                                 "user ids answered in allowlist mode")
    delay_s: float = key(0.0, Number(0, 60, unit="seconds"),
                         "ring this long before answering automatically")


@dataclass(frozen=True)
class CallSection:
    """Call timing, and whom the kiosk calls."""

    ring_timeout_s: float = key(30.0, Number(0, 300, lo_open=True, unit="seconds"),
                                "stop ringing (in or out) after this long")
    connect_timeout_s: float = key(15.0, Number(0, lo_open=True, unit="seconds"),
                                   "end an answered call whose media has not connected by then")
    disconnect_grace_s: float = key(3.0, Number(0, unit="seconds"),
                                    "wait this long for lost media to come back before hanging up")
    media_timeout_s: float = key(2.0, Number(0, 60, lo_open=True, unit="seconds"),
                                 "nothing from the caller (RTP or RTCP) this long: the media "
                                 "path is lost, and the disconnect grace begins")
    contact: str = key("", Text(numbers_ok=True),
                       "user id the kiosk calls when asked to call out (kioskctl call, button)")


@dataclass(frozen=True)
class VideoSection:
    """The camera, or what stands in for it."""

    source: str = key("synthetic", Text(non_empty=True),
                      "video source: synthetic (a generated test picture), picamera2 (the Pi "
                      "camera module), v4l2 (a USB camera at device) or file (loops file)")
    width: int = key(640, Integer(16, 3840, unit="pixels"), "frame width")
    height: int = key(480, Integer(16, 2160, unit="pixels"), "frame height")
    fps: int = key(24, Integer(1, 60, unit="frames per second"), "frame rate")
    encoder: str = key("software", OneOf(("software", "hardware")),
                       "H.264 encoding: software (aiortc encodes) or hardware (the Pi's own "
                       "encoder, picamera2 only)")
    bitrate_kbps: int = key(0, Integer(0, 20000, unit="kilobits per second"),
                            "hardware encoder's starting bitrate; 0: from size and frame rate")
    encoder_speed: str = key("fast", OneOf(("quality", "balanced", "fast")),
                             "software VP8 and H.264 encoding: quality, balanced or fast (less "
                             "CPU, a little less detail); docs/media.md has the numbers")
    device: str = key("/dev/video0", Text(non_empty=True), "V4L2 camera device (v4l2 only)")
    input_format: str = key("mjpeg", OneOf(("mjpeg", "yuyv422")),
                            "what the V4L2 camera sends (v4l2 only)")
    file: str = key("", Text(), "video file to loop (file only)")
    shed_under_load: bool = key(True, Flag(),
                                "when the CPU cannot keep up, send and draw less video (lower "
                                "frame rate, then smaller) so that the sound never breaks up")


@dataclass(frozen=True)
class MediaSection:
    """Hardware profile: sets the video keys for a board unless they are set explicitly."""

    profile: str = key("auto", OneOf(("auto", "pi4", "pi5", "zero2w", "desktop")),
                       "auto reads the board from /proc/device-tree/model; pi4 and zero2w use "
                       "the hardware H.264 encoder, pi5 and desktop encode in software")


@dataclass(frozen=True)
class AudioSection:
    """The microphone and the speaker."""

    source: str = key("synthetic", Text(non_empty=True),
                      "audio source: synthetic (a tone of tone_hz) or alsa (capture_device)")
    sink: str = key("null", Text(non_empty=True),
                    "audio output: null (discard the caller's audio) or alsa (playback_device)")
    tone_hz: float = key(440.0, Number(20, 20000, unit="hertz"),
                         "pitch of the synthetic source's tone")
    capture_device: str = key("default", Text(non_empty=True),
                              "ALSA capture device (arecord -L lists them), e.g. plughw:1,0")
    playback_device: str = key("default", Text(non_empty=True),
                               "ALSA playback device (aplay -L lists them)")
    playout_buffer_ms: int = key(60, Integer(20, 500, unit="milliseconds"),
                                 "speaker buffer that absorbs network jitter")
    max_playout_ms: int = key(200, Integer(40, 2000, unit="milliseconds"),
                              "more buffered than this is dropped, never played late")
    # The microphone's processing stage (media/processing.py, docs/audio.md): alsa source only.
    echo_cancellation: bool = key(True, Flag(),
                                  "cancel the speaker's echo in the microphone's audio (WebRTC "
                                  "AEC3); acts when audio.source and audio.sink are both alsa")
    noise_suppression: bool = key(True, Flag(), "suppress steady background noise in the "
                                                "microphone's audio (alsa source)")
    high_pass_filter: bool = key(True, Flag(), "cut low rumble and hum from the microphone's "
                                               "audio (alsa source; always on with echo "
                                               "cancellation)")
    auto_gain: bool = key(True, Flag(), "bring the microphone's speech to a steady level "
                                        "(alsa source)")


@dataclass(frozen=True)
class DisplaySection:
    """Where the caller's video is shown."""

    mode: str = key("none", OneOf(("none", "window", "fullscreen")),
                    "none: no screen (headless); window; fullscreen (the kiosk's screen)")
    preview: bool = key(True, Flag(), "show the kiosk's own camera as a small picture in a call")
    preview_corner: str = key("bottom-right", OneOf(("top-left", "top-right", "bottom-left",
                                                     "bottom-right")),
                              "where the preview picture goes")
    sleep_after_s: float = key(0.0, Number(0, None, unit="seconds"),
                               "blank the screen after this long idle; 0 never blanks")
    backlight: str = key("", Text(), 'switch the backlight off while blank: "" (no), "auto" '
                                     "(the first /sys/class/backlight), or a bl_power file")


@dataclass(frozen=True)
class InputSection:
    """Physical buttons on GPIO (BCM pin numbers, wired to ground; -1: none)."""

    gpio_answer_pin: int = key(-1, Integer(-1, 27), "answer button")
    gpio_hangup_pin: int = key(-1, Integer(-1, 27), "hang-up (and decline) button")
    gpio_call_pin: int = key(-1, Integer(-1, 27), "call button: calls call.contact")


@dataclass(frozen=True)
class RtcSection:
    """WebRTC."""

    ice_servers: tuple[IceServer, ...] = key(
        (), IceServers(), "STUN/TURN servers; empty by default so an unreachable server can "
                          "never stall a call")
    video_codecs: tuple[str, ...] = key(("VP8", "H264"), Codecs(("VP8", "H264")),
                                        "video codecs in order of preference; a preference "
                                        "orders, never refuses: the others are offered and "
                                        "accepted after them")


@dataclass(frozen=True)
class ControlSection:
    """The local control socket used by kioskctl."""

    socket: str = key("", Text(), "path of the control socket; empty: automatic "
                                  "($RUNTIME_DIRECTORY/control.sock under systemd)")


@dataclass(frozen=True)
class CalllogSection:
    """The call history (SQLite), shown by `kioskctl calls`."""

    path: str = key("", Text(), "database file; empty: $STATE_DIRECTORY/calls.sqlite3 under "
                                "systemd, else /var/lib/kioskd/calls.sqlite3 as root")
    max_rows: int = key(10000, Integer(0, None, unit="calls"), "calls kept; 0 keeps all")
    max_age_days: float = key(365.0, Number(0, None, unit="days"),
                              "calls older than this are deleted; 0 keeps them forever")


@dataclass(frozen=True)
class MetricsSection:
    """Prometheus metrics over HTTP (text exposition at /metrics)."""

    enabled: bool = key(False, Flag(), "serve metrics")
    host: str = key("127.0.0.1", Text(non_empty=True), "address to listen on; keep it on "
                                                       "loopback unless a firewall guards it")
    port: int = key(9464, Integer(1, 65535), "TCP port")


@dataclass(frozen=True)
class LogSection:
    """Logging."""

    level: str = key("info", OneOf(("debug", "info", "warning", "error")), "least severe "
                                                                              "level logged")


def section(cls: type) -> Any:
    return field(default_factory=cls, metadata={"section": cls})


@dataclass(frozen=True)
class Config:
    """A whole, validated configuration. `path` is the main file it was loaded from, if any."""

    kiosk: KioskSection = section(KioskSection)
    signaling: SignalingSection = section(SignalingSection)
    answer: AnswerSection = section(AnswerSection)
    call: CallSection = section(CallSection)
    media: MediaSection = section(MediaSection)
    video: VideoSection = section(VideoSection)
    audio: AudioSection = section(AudioSection)
    display: DisplaySection = section(DisplaySection)
    input: InputSection = section(InputSection)
    rtc: RtcSection = section(RtcSection)
    control: ControlSection = section(ControlSection)
    calllog: CalllogSection = section(CalllogSection)
    metrics: MetricsSection = section(MetricsSection)
    log: LogSection = section(LogSection)
    path: Path | None = field(default=None, compare=False)


# -- introspection ----------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyInfo:
    section: str
    name: str
    default: Any
    kind: Kind
    doc: str

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.name}"


def sections() -> dict[str, type]:
    """Section name -> its dataclass, in declaration order."""
    return {f.name: f.metadata["section"] for f in dataclasses.fields(Config)
            if "section" in f.metadata}


def section_keys(name: str) -> dict[str, KeyInfo]:
    cls = sections()[name]
    return {f.name: KeyInfo(name, f.name, f.default, f.metadata["kind"], f.metadata["doc"])
            for f in dataclasses.fields(cls)}


def all_keys() -> Iterator[KeyInfo]:
    for name in sections():
        yield from section_keys(name).values()


def find_key(dotted: str) -> KeyInfo | None:
    section_name, _, name = dotted.partition(".")
    if section_name not in sections():
        return None
    return section_keys(section_name).get(name)


def plain(value: Any, mask_secrets: bool = False) -> Any:
    """A config value as plain TOML-able data: tuples -> lists, IceServer -> dict."""
    if isinstance(value, IceServer):
        return value.as_dict(mask_secrets)
    if isinstance(value, tuple):
        return [plain(v, mask_secrets) for v in value]
    return value


def defaults_dict() -> dict[str, dict[str, Any]]:
    """The defaults as the data a TOML file would hold."""
    out: dict[str, dict[str, Any]] = {}
    for info in all_keys():
        out.setdefault(info.section, {})[info.name] = plain(info.default)
    return out


def reference() -> str:
    """The key reference as a Markdown table per section (docs/configuration.md holds a copy)."""
    lines: list[str] = []
    for name, cls in sections().items():
        lines += [f"### [{name}]", "", (cls.__doc__ or "").strip(), "",
                  "| key | default | allowed | meaning |", "|---|---|---|---|"]
        for info in section_keys(name).values():
            allowed = info.kind.describe().replace("|", "\\|")
            default = toml_value(plain(info.default)).replace("|", "\\|")
            lines.append(f"| `{info.name}` | `{default}` | {allowed} | {info.doc} |")
        lines.append("")
    return "\n".join(lines)


# -- validation -------------------------------------------------------------------------------


def check_layer(data: Mapping[str, Any], source: str) -> tuple[dict[str, dict[str, Any]],
                                                                 list[ConfigIssue]]:
    """Split one layer (a file's or `--set`'s data) into known settings and issues for unknown
    sections and keys."""
    known = sections()
    good: dict[str, dict[str, Any]] = {}
    issues: list[ConfigIssue] = []
    for section_name, table in data.items():
        if section_name not in known:
            if not isinstance(table, Mapping):
                owners = [s for s in known if section_name in section_keys(s)]
                hint = (f"put it under [{owners[0]}]" if owners
                        else f"settings go in sections: {', '.join(known)}")
                issues.append(ConfigIssue(source, section_name,
                                          f"unknown key {section_name} outside any section; "
                                          f"{hint}"))
            else:
                issues.append(ConfigIssue(source, section_name,
                                          f"unknown section [{section_name}]"
                                          f"{did_you_mean(section_name, known)}; "
                                          f"known sections: {', '.join(known)}"))
            continue
        if not isinstance(table, Mapping):
            issues.append(ConfigIssue(source, section_name,
                                      f"{_got(table)}; [{section_name}] must be a section "
                                      f"(a table of settings)"))
            continue
        names = section_keys(section_name)
        for name, value in table.items():
            dotted = f"{section_name}.{name}"
            if name not in names:
                issues.append(ConfigIssue(source, dotted,
                                          f"unknown key {dotted}{did_you_mean(name, names)}; "
                                          f"known keys in [{section_name}]: {', '.join(names)}"))
                continue
            good.setdefault(section_name, {})[name] = value
    return good, issues


def build(values: Mapping[str, Mapping[str, Any]], origins: Mapping[str, str],
          path: Path | None = None) -> Config:
    """Validate merged, known settings and make the Config; raise ConfigError with every issue.

    `values`: section -> key -> raw TOML value (missing keys take their defaults).
    `origins`: dotted key -> where its value came from (default "defaults").
    """
    issues: list[ConfigIssue] = []
    made: dict[str, Any] = {}
    for section_name, cls in sections().items():
        table = values.get(section_name, {})
        kwargs: dict[str, Any] = {}
        for info in section_keys(section_name).values():
            if info.name not in table:
                continue
            try:
                kwargs[info.name] = info.kind.convert(table[info.name])
            except Invalid as bad:
                source = origins.get(info.dotted, "defaults")
                issues += [ConfigIssue(source, info.dotted + suffix, message)
                           for suffix, message in bad.problems]
        made[section_name] = cls(**kwargs)
    if issues:
        raise ConfigError(issues)
    return Config(**made, path=path)


def as_dict(config: Config, mask_secrets: bool = True) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for section_name in sections():
        part = getattr(config, section_name)
        out[section_name] = {f.name: plain(getattr(part, f.name), mask_secrets)
                             for f in dataclasses.fields(part)}
    return out


__all__: Sequence[str] = (
    "AnswerSection", "AudioSection", "CallSection", "Config", "ConfigError", "ConfigIssue",
    "ControlSection", "DisplaySection", "IceServer", "KeyInfo", "KioskSection", "LogSection",
    "RtcSection", "SignalingSection", "VideoSection", "all_keys", "as_dict", "build",
    "check_layer", "defaults_dict", "find_key", "reference", "section_keys", "sections",
    "toml_value",
)
