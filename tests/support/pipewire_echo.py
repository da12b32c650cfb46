"""A real acoustic echo path for tests: a private PipeWire in which a virtual loudspeaker is
heard by a virtual microphone through a synthetic room, in real time.

    with running_echo_path(tmp_path) as path:
        monkeypatch.setenv("ALSA_CONFIG_PATH", str(path.asoundrc))
        # audio.playback_device=echo_playback, audio.capture_device=echo_capture

What runs, for one test and stopped by PID after it (even when it fails):
- `pipewire` with a configuration of its own: no D-Bus, no device monitors, a dummy driver
  as the graph's clock (so the devices are clocked, like a sound card), and one
  filter-chain node: a virtual sink "echo_speaker" whose input is convolved with the room's
  impulse response (`Room`, written as room.wav) into a virtual source "echo_microphone".
  Nothing else feeds that source: the microphone hears the loudspeaker and nothing else.
- `wireplumber`, the session manager, configured to do one thing: link each stream to the
  node it names (PipeWire itself never links anything). No monitors, no saved state.
Their config and state folders are under the test's folder, their runtime folder (the socket)
is a short one of their own, and the socket is named by its full path: nothing of the
machine's (or a user's) PipeWire is used or touched.

The kiosk reaches them through ALSA's `pipewire` plugin (Debian's pipewire-alsa), with two
PCMs in an ALSA configuration of their own (`asoundrc`), given to a process by
ALSA_CONFIG_PATH: only that process sees them, and the machine's `default` device stays as it
was (scripts/setup.sh sets pipewire-alsa's default-device file aside when it installs it).
"""

from __future__ import annotations

import contextlib
import glob
import math
import os
import shutil
import subprocess
import tempfile
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tests.support.processes import stop_process

PLAYBACK_PCM = "echo_playback"  # the kiosk's loudspeaker: plays into the room
CAPTURE_PCM = "echo_capture"  # the kiosk's microphone: hears the room
SPEAKER_NODE = "echo_speaker"
MICROPHONE_NODE = "echo_microphone"
RATE = 48000
INSTALL_HINT = ("PipeWire is not installed (scripts/setup.sh --test installs pipewire-alsa and "
                "wireplumber)")
COMMANDS = ("pipewire", "wireplumber", "pw-metadata")


def available() -> bool:
    """True when the daemons and ALSA's pipewire plugin are installed."""
    plugin = glob.glob("/usr/lib/*/alsa-lib/libasound_module_pcm_pipewire.so") + glob.glob(
        "/usr/lib/alsa-lib/libasound_module_pcm_pipewire.so")
    return bool(plugin) and all(shutil.which(command) for command in COMMANDS)


@dataclass(frozen=True)
class Room:
    """A loudspeaker and a microphone in a small furnished room, as an impulse response: the
    direct sound after `direct_delay_ms`, then diffuse reflections (seeded noise) decaying by
    60 dB in `rt60_ms` and holding `reverb_db` of energy relative to the direct sound. The
    whole gives `gain_db` for broadband sound, the loudspeaker's volume and the microphone's
    gain included: a loud loudspeaker near the microphone, as on a kiosk."""

    gain_db: float = 6.0
    direct_delay_ms: float = 2.0  # about 70 cm from the loudspeaker to the microphone
    reverb_db: float = -6.0
    rt60_ms: float = 150.0
    length_ms: float = 250.0  # where the tail is 100 dB down: nothing audible is cut off
    seed: int = 14

    @property
    def direct_gain(self) -> float:
        """The direct sound's amplitude in the impulse response."""
        return math.sqrt(10 ** (self.gain_db / 10) / (1 + 10 ** (self.reverb_db / 10)))

    def impulse_response(self, rate: int = RATE) -> np.ndarray:
        response = np.zeros(round(self.length_ms * rate / 1000))
        direct = round(self.direct_delay_ms * rate / 1000)
        response[direct] = self.direct_gain
        start = direct + round(rate / 1000)  # the first reflection a millisecond later
        t = np.arange(len(response) - start) / rate
        tail = np.random.default_rng(self.seed).standard_normal(t.size)
        tail *= np.exp(-t * math.log(1000) / (self.rt60_ms / 1000))  # amplitude -60 dB at rt60
        tail *= self.direct_gain * math.sqrt(10 ** (self.reverb_db / 10) / np.sum(tail * tail))
        response[start:] = tail
        return response


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE) -> None:
    """Mono 32-bit PCM of samples within -1..1 (the impulse response's quiet tail needs more
    than 16 bits)."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(4)
        out.setframerate(rate)
        out.writeframes(np.round(np.clip(samples, -1, 1) * (2**31 - 1)).astype("<i4").tobytes())


def _quoted(value: object) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def pipewire_conf(impulse_response: Path, gain: float) -> str:
    return f"""\
context.properties = {{
    core.daemon = true
    core.name = pipewire-0
    support.dbus = false
    default.clock.rate = {RATE}
    default.clock.allowed-rates = [ {RATE} ]
}}
context.spa-libs = {{
    audio.convert.* = audioconvert/libspa-audioconvert
    support.* = support/libspa-support
}}
context.modules = [
    {{ name = libpipewire-module-protocol-native }}
    {{ name = libpipewire-module-metadata }}
    {{ name = libpipewire-module-access }}
    {{ name = libpipewire-module-spa-node-factory }}
    {{ name = libpipewire-module-client-node }}
    {{ name = libpipewire-module-adapter }}
    {{ name = libpipewire-module-link-factory }}
    {{ name = libpipewire-module-session-manager }}
    {{ name = libpipewire-module-filter-chain
        args = {{
            node.description = "room between loudspeaker and microphone"
            media.name = "room"
            filter.graph = {{
                nodes = [
                    {{ type = builtin name = room label = convolver
                      config = {{ filename = {_quoted(impulse_response)} gain = {gain!r} }} }}
                ]
            }}
            audio.channels = 1
            audio.position = [ MONO ]
            capture.props = {{ node.name = {SPEAKER_NODE} media.class = Audio/Sink }}
            playback.props = {{ node.name = {MICROPHONE_NODE} media.class = Audio/Source }}
        }}
    }}
]
context.objects = [
    # The graph's clock when nothing else drives it (there is no sound card): real time.
    {{ factory = spa-node-factory
        args = {{
            factory.name = support.node.driver
            node.name = Dummy-Driver
            node.group = pipewire.dummy
            priority.driver = 20000
        }}
    }}
]
"""


WIREPLUMBER_CONF = """\
context.properties = {
    log.level = 2
    wireplumber.script-engine = lua-scripting
    support.dbus = false
}
context.spa-libs = {
    audio.convert.* = audioconvert/libspa-audioconvert
    support.* = support/libspa-support
}
context.modules = [
    { name = libpipewire-module-protocol-native }
    { name = libpipewire-module-client-node }
    { name = libpipewire-module-client-device }
    { name = libpipewire-module-adapter }
    { name = libpipewire-module-metadata }
    { name = libpipewire-module-session-manager }
]
wireplumber.components = [
    { name = libwireplumber-module-lua-scripting, type = module }
    { name = echo-path.lua, type = config/lua }
]
"""

# Only what links a stream to the node it names (and makes the two nodes the defaults).
WIREPLUMBER_POLICY = """\
components = {}

function load_module(m, a)
  if not components[m] then
    components[m] = { "libwireplumber-module-" .. m, type = "module", args = a }
  end
end

function load_script(s, a)
  if not components[s] then
    components[s] = { s, type = "script/lua", args = a }
  end
end

load_module("metadata")
load_module("si-node")
load_module("si-audio-adapter")
load_module("si-standard-link")
load_module("si-audio-endpoint")
load_module("default-nodes", { ["use-persistent-storage"] = false })
load_module("default-nodes-api")
load_script("create-item.lua", {})
load_script("policy-node.lua", {})
"""


def asoundrc(socket: Path) -> str:
    return (
        f"pcm.{PLAYBACK_PCM} {{\n"
        "    type pipewire\n"
        f"    server {_quoted(socket)}\n"
        f"    playback_node {_quoted(SPEAKER_NODE)}\n"
        "}\n"
        f"pcm.{CAPTURE_PCM} {{\n"
        "    type pipewire\n"
        f"    server {_quoted(socket)}\n"
        f"    capture_node {_quoted(MICROPHONE_NODE)}\n"
        "}\n"
    )


@dataclass
class EchoPath:
    directory: Path
    room: Room
    asoundrc: Path
    socket: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def logs(self) -> str:
        """The daemons' logs, for a failure message."""
        texts = []
        for name in ("pipewire.log", "wireplumber.log"):
            log = self.directory / name
            if log.exists():
                texts.append(f"--- {name}\n" + log.read_text(errors="replace")[-2000:])
        return "\n".join(texts)

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with open(self.directory / f"{name}.log", "ab") as log:
            process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def stop(self) -> None:
        """Stop the daemons by PID, the session manager first."""
        while self.processes:
            stop_process(self.processes.pop())


def _private_env(directory: Path, runtime: Path) -> dict[str, str]:
    """The environment of the daemons: every folder they use is theirs alone."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PIPEWIRE_", "WIREPLUMBER_", "DBUS_", "XDG_", "PULSE_"))}
    for name in ("config", "state", "data"):
        (directory / name).mkdir(exist_ok=True)
    env.update(HOME=str(directory), XDG_RUNTIME_DIR=str(runtime), PIPEWIRE_RUNTIME_DIR=str(runtime),
               XDG_CONFIG_HOME=str(directory / "config"), XDG_STATE_HOME=str(directory / "state"),
               XDG_DATA_HOME=str(directory / "data"),
               WIREPLUMBER_CONFIG_DIR=str(directory / "wireplumber"))
    return env


def _wait_for_socket(path: EchoPath, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.socket.exists():  # nothing announces it: poll, with the deadline below
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("pipewire did not start:\n" + path.logs())
        time.sleep(0.02)


def _wait_for_defaults(path: EchoPath, env: dict[str, str], timeout: float) -> None:
    """Until WirePlumber has seen both nodes (it names them the defaults): then it links
    streams to them."""
    wanted = {"default.audio.sink", "default.audio.source"}
    seen: set[str] = set()
    done = threading.Event()  # both seen, or the monitor ended
    monitor = subprocess.Popen(["pw-metadata", "-r", str(path.socket), "-m", "-n", "default"],
                               env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)

    def watch() -> None:
        assert monitor.stdout is not None
        try:
            for line in monitor.stdout:
                seen.update(key for key in wanted if f"key:'{key}'" in line)
                if seen == wanted:
                    return
        finally:
            done.set()

    reader = threading.Thread(target=watch, name="pw-metadata", daemon=True)
    reader.start()
    try:
        done.wait(timeout)
        if seen != wanted:
            raise RuntimeError(f"wireplumber did not take up the nodes (saw {sorted(seen)}):\n"
                               + path.logs())
    finally:
        monitor.terminate()
        monitor.wait(5)
        reader.join(5)


@contextlib.contextmanager
def running_echo_path(directory: Path, room: Room = Room(),
                      timeout: float = 10.0) -> Iterator[EchoPath]:
    """Start the private PipeWire and WirePlumber in `directory`; stop them afterwards."""
    if not available():
        raise FileNotFoundError(INSTALL_HINT)
    directory.mkdir(parents=True, exist_ok=True)
    impulse_response = directory / "room.wav"
    response = room.impulse_response()
    peak = float(np.max(np.abs(response)))  # a WAV holds -1..1: the rest is the convolver's gain
    write_wav(impulse_response, response / peak)
    (directory / "pipewire.conf").write_text(pipewire_conf(impulse_response, peak))
    policy = directory / "wireplumber" / "echo-path.lua.d"
    policy.mkdir(parents=True, exist_ok=True)
    (directory / "wireplumber" / "wireplumber.conf").write_text(WIREPLUMBER_CONF)
    (policy / "50-link-named-nodes.lua").write_text(WIREPLUMBER_POLICY)
    # A unix socket's path has at most 107 bytes: the runtime folder is a short one in /tmp.
    runtime = Path(tempfile.mkdtemp(prefix="kioskd-pw-", dir="/tmp"))
    env = _private_env(directory, runtime)
    socket = runtime / "pipewire-0"
    config = directory / "asoundrc"
    config.write_text(asoundrc(socket))
    path = EchoPath(directory, room, config, socket)
    try:
        pipewire = path.start("pipewire", ["pipewire", "-c", str(directory / "pipewire.conf")],
                              env)
        _wait_for_socket(path, pipewire, timeout)
        path.start("wireplumber", ["wireplumber"], env)
        _wait_for_defaults(path, env, timeout)
        yield path
    finally:
        path.stop()
        shutil.rmtree(runtime, ignore_errors=True)
