"""The plugin worker process: owns one plugin (or isolated effect) and processes audio for
the parent (`plugin_host.isolated.Worker`).

    python -m plugin_host.worker FD_IN FD_OUT SHARED_PATH

Requests arrive pickled on FD_IN, replies leave on FD_OUT (multiprocessing Connections over
pipes), starting with ("ok", "ready") once the imports are done. Audio travels through the
file SHARED_PATH mapped by both sides (input frames at offset 0, output frames after
`capacity` frames), so a message is a few bytes and a parent never blocks writing to a
worker that hangs. Requests and replies:

    ("open", payload, rate, channels, block)   -> ("ok", {"latency", "name", "parameters"})
    ("run", frames, capacity, block)           -> ("ok", frames_out)  process(reset=False)
                                                  in `block`-frame calls (None: one call)
    ("render", frames, capacity, None)         -> ("ok", frames)      process(reset=True)
    ("reset",)                                 -> ("ok", None)
    ("close",)                                 -> ("ok", None), then exit
    any failure                                -> ("invalid", message) | ("failed", message)

Test hook: JENBRIDGE_PLUGIN_HOST_FAULT="ACTION:OP" (ACTION abort | exit | hang; OP a request
name) makes the worker abort, exit(3) or sleep forever on receiving OP, so the tests drive
the parent's real crash and timeout handling.
"""

from __future__ import annotations

import mmap
import os
import resource
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import pedalboard

from plugin_host.effects import build_effect, effect_info, streaming_latency
from plugin_host.errors import ChainError
from plugin_host.stream import run_blocks

FAULT_ENV = "JENBRIDGE_PLUGIN_HOST_FAULT"


class Invalid(Exception):
    """The payload is wrong (a user mistake): the parent raises ChainError."""


class Shared:
    """The audio exchange file, mapped as float32 [input (C, capacity) | output (C, capacity)]."""

    def __init__(self, path: str, channels: int) -> None:
        self.fd = os.open(path, os.O_RDWR)
        self.channels = channels
        self.capacity = 0
        self.map: mmap.mmap | None = None

    def views(self, capacity: int) -> tuple[np.ndarray, np.ndarray]:
        if capacity != self.capacity:
            if self.map is not None:
                self.map.close()
            self.map = mmap.mmap(self.fd, 2 * self.channels * capacity * 4)
            self.capacity = capacity
        assert self.map is not None
        both = np.frombuffer(self.map, np.float32).reshape(2, self.channels, capacity)
        return both[0], both[1]


def _fault(op: str) -> None:
    action, _, target = os.environ.get(FAULT_ENV, "").partition(":")
    if target != op:
        return
    if action == "abort":
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a test crash leaves no core file
        os.abort()
    if action == "exit":
        os._exit(3)
    if action == "hang":
        while True:
            time.sleep(3600)


def _open_plugin(payload: dict[str, Any], sample_rate: float, channels: int) -> Any:
    """Load a VST3 / AU, apply saved state then parameter values; check it is an effect that
    takes `channels` channels."""
    path = payload["plugin"]
    plugin: Any
    try:
        plugin = pedalboard.load_plugin(path, plugin_name=payload.get("plugin_name"))
    except (ImportError, ValueError, RuntimeError) as error:  # not a plugin, a shell, ...
        raise Invalid(f"cannot load {path}: {str(error).strip()}") from error
    if not plugin.is_effect:
        raise Invalid(f"{plugin.name} is an instrument, not an effect")
    if payload.get("state"):
        try:
            plugin.raw_state = Path(payload["state"]).read_bytes()
        except (OSError, ValueError, RuntimeError) as error:
            raise Invalid(f"cannot apply state {payload['state']}: {error}") from error
    known = plugin.parameters
    for name, value in payload.get("params", {}).items():
        if name not in known:
            raise Invalid(f"unknown parameter {name!r}; known: {', '.join(known)}")
        try:
            setattr(plugin, name, value)
        except (ValueError, TypeError, RuntimeError) as error:
            raise Invalid(f"parameter {name!r}: {str(error).strip()}") from error
    try:  # prepares the plugin at this rate and layout, so its reported latency is current
        plugin.process(np.zeros((channels, 2 * channels + 64), np.float32), sample_rate)
    except (ValueError, RuntimeError) as error:
        raise Invalid(f"{plugin.name}: {str(error).strip()}") from error
    plugin.reset()
    return plugin


def open_payload(
    payload: dict[str, Any], sample_rate: float, channels: int, block: int
) -> tuple[Any, dict[str, Any]]:
    """The plugin or effect a payload names and what the parent needs to know about it."""
    if "plugin" in payload:
        plugin = _open_plugin(payload, sample_rate, channels)
        # pedalboard withholds exactly the reported latency from a VST3's output, whatever
        # the call sizes, once the plugin was reset.
        parameters = {name: str(p) for name, p in plugin.parameters.items()}
        return plugin, {"latency": int(plugin.reported_latency_samples), "name": plugin.name,
                        "parameters": parameters}
    info = effect_info(payload["effect"], payload["where"])
    plugin = build_effect(info, payload["kwargs"], payload["where"])
    latency = 0
    if not info.offline_only:
        latency = streaming_latency(
            lambda: build_effect(info, payload["kwargs"], payload["where"]),
            sample_rate, channels, block,
        )
    return plugin, {"latency": latency, "name": info.name, "parameters": {}}


def serve(rx: Connection, tx: Connection, shared_path: str) -> int:
    plugin: Any = None
    shared: Shared | None = None
    sample_rate = 0.0
    tx.send(("ok", "ready"))  # imports done: from here on the plugin's timeout applies
    while True:
        try:
            request = rx.recv()
        except EOFError:  # the parent is gone
            return 0
        op = request[0]
        _fault(op)
        try:
            if op == "open":
                _, payload, sample_rate, channels, block = request
                shared = Shared(shared_path, channels)
                plugin, info = open_payload(payload, sample_rate, channels, block)
                tx.send(("ok", info))
            elif op in ("run", "render"):
                _, frames, capacity, block = request
                assert plugin is not None and shared is not None
                source, target = shared.views(capacity)
                x = np.ascontiguousarray(source[:, :frames])
                if op == "run":
                    out = run_blocks(plugin, x, sample_rate, block)
                else:
                    out = plugin.process(x, sample_rate, reset=True)
                done = out.size // shared.channels
                target[:, :done] = out.reshape(shared.channels, done)
                del source, target
                tx.send(("ok", done))
            elif op == "reset":
                plugin.reset()
                tx.send(("ok", None))
            elif op == "close":
                tx.send(("ok", None))
                return 0
            else:
                tx.send(("failed", f"unknown request {op!r}"))
        except (Invalid, ChainError) as error:
            tx.send(("invalid", str(error)))
        except Exception as error:  # reported to the parent, which raises PluginError
            tx.send(("failed", f"{type(error).__name__}: {str(error).strip()}"))


def main(argv: list[str]) -> int:
    fd_in, fd_out, shared_path = int(argv[0]), int(argv[1]), argv[2]
    rx = Connection(fd_in, writable=False)
    tx = Connection(fd_out, readable=False)
    return serve(rx, tx, shared_path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
