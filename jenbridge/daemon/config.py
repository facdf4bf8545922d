"""The daemon's configuration: one strict, typed YAML file plus command-line overrides.

    host: 127.0.0.1          # bind address (loopback by default: the DAW runs on this machine)
    port: 9000               # OSC/UDP port the daemon listens on
    reply_port: null         # send replies to this port on the sender's host (null: sender's port)
    model: null              # bundle folder (null: jenbridge/assets/default)
    output_dir: ~/jenbridge-out
    allow: [~/Music]         # folders requests may read from / write to (output_dir is added)
    queue_size: 8            # jobs that may wait behind the running one
    sample_rate: 48000       # output rate of /jb/generate when the request names none
    wav_format: float32      # or pcm24
    max_request_seconds: 600 # longest audio one request may ask the model to make
    max_input_seconds: 3600  # longest input file a request may hand in
    audio_device: null       # output device name or unique substring (null: PortAudio's default)
    audio_hostapi: null      # restrict the device search to a host API ("JACK", "ALSA", ...)
    play_results: false      # also play every finished job's audio at once on the device
    presets_dirs: []         # more preset folders (after the shipped and ~/.config/jenbridge ones)
    link: false              # join an Ableton Link session: live loops take its tempo and bars

An unknown key or a wrong type is a ConfigError (a ValueError) that names the key, like the
model configs (jenbridge/config.py). `Allowed` turns the folder list into the path check every
request goes through: absolute paths only, no `..` component, symlinks resolved, and the
resolved path must lie inside one of the resolved folders.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jenbridge.config import ConfigError, read_yaml

DEFAULT_BUNDLE = Path(__file__).resolve().parent.parent / "assets" / "default"


class DaemonConfig(BaseModel):
    """Everything `jenbridge serve` needs besides the model bundle itself."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    host: str = "127.0.0.1"
    port: int = Field(9000, ge=1, le=65535)
    reply_port: int | None = Field(None, ge=1, le=65535)
    model: Path | None = None
    output_dir: Path = Path("~/jenbridge-out")
    allow: tuple[Path, ...] = ()
    queue_size: int = Field(8, ge=1, le=1024)
    sample_rate: int = Field(48000, ge=8000, le=384000)
    wav_format: Literal["float32", "pcm24"] = "float32"
    max_request_seconds: float = Field(600.0, gt=0.0, le=3600.0)
    max_input_seconds: float = Field(3600.0, gt=0.0, le=24 * 3600.0)
    providers: str | None = None
    threads: int | None = Field(None, ge=1, le=256)
    audio_device: str | None = None
    audio_hostapi: str | None = None
    play_results: bool = False
    presets_dirs: tuple[Path, ...] = ()
    link: bool = False


def _format_error(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"{source}: {key}: {msg}")
    return "\n".join(lines)


def load_daemon_config(path: Path | None = None,
                       overrides: dict[str, Any] | None = None) -> DaemonConfig:
    """Read the YAML file (None: defaults only), apply the non-None overrides, validate.

    Paths may be given as strings in YAML; they are converted before validation so that the
    strict model still refuses numbers or lists where a path belongs.
    """
    data: Any = {} if path is None else read_yaml(path)
    if data is None:
        data = {}
    source = str(path) if path is not None else "<command line>"
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    data = dict(data)
    for key, value in (overrides or {}).items():
        if value is not None:
            data[key] = value
    for key in ("model", "output_dir"):
        if isinstance(data.get(key), str):
            data[key] = Path(data[key])
    for key in ("allow", "presets_dirs"):
        if isinstance(data.get(key), list | tuple):
            data[key] = tuple(Path(p) if isinstance(p, str) else p for p in data[key])
    try:
        return DaemonConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_error(err, source)) from None


def bundle_path(config: DaemonConfig) -> Path:
    """The model bundle to serve: the configured one, else the shipped default."""
    if config.model is not None:
        return config.model.expanduser()
    if not (DEFAULT_BUNDLE / "manifest.json").is_file():
        raise ConfigError(f"no shipped model bundle at {DEFAULT_BUNDLE}; pass --model BUNDLE "
                          "(a folder made by `jenbridge export`) or set `model:` in the config")
    return DEFAULT_BUNDLE


class PathRefused(ValueError):
    """A request's path is not allowed; `code` is "forbidden" or "not_found"."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Allowed:
    """The folders requests may touch, resolved once at start (symlinks followed)."""

    def __init__(self, folders: tuple[Path, ...] | list[Path]) -> None:
        self.roots = tuple(Path(os.path.realpath(Path(f).expanduser())) for f in folders)

    def check(self, raw: str, what: str, want_dir: bool = False) -> Path:
        """The resolved path of `raw` if it exists inside an allowed folder, else PathRefused.

        Relative paths and `..` components are refused before touching the file system, so a
        request cannot probe which files exist outside the allowed folders.
        """
        if not raw or "\x00" in raw:
            raise PathRefused("bad_request", f"{what}: empty or invalid path")
        path = Path(raw)
        if not path.is_absolute():
            raise PathRefused("forbidden", f"{what} {raw!r} must be an absolute path")
        if ".." in path.parts:
            raise PathRefused("forbidden", f"{what} {raw!r} contains '..'")
        real = Path(os.path.realpath(path))
        if not any(real == root or real.is_relative_to(root) for root in self.roots):
            raise PathRefused("forbidden", f"{what} {raw!r} is outside the allowed folders")
        if not real.exists():
            raise PathRefused("not_found", f"{what} {raw!r} does not exist")
        if want_dir and not real.is_dir():
            raise PathRefused("not_found", f"{what} {raw!r} is not a folder")
        if not want_dir and not real.is_file():
            raise PathRefused("not_found", f"{what} {raw!r} is not a file")
        return real
