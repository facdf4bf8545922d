"""Every built-in pedalboard effect by name: arguments read from pedalboard, checked, built.

The registry is pedalboard itself: each leaf `pedalboard.Plugin` class that is neither a
container nor an external (VST3/AU) plugin. Constructor keywords are read from pybind11's
`__init__` docstring (`__init__(self: pedalboard_native.Reverb, room_size: float = 0.5, ...)`),
so a YAML item `{effect: Reverb, room_size: 0.3}` becomes `Reverb(room_size=0.3)` with no
translation layer, and a new pedalboard effect is available the day pedalboard ships it.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pedalboard

from plugin_host.errors import ChainError

# Effects pedalboard builds but cannot stream: with reset=False their output is not the offline
# output (tests/test_plugin_host.py checks both still misbehave). A chain holding one renders
# offline only, and `EffectChain.stream()` refuses it with this reason.
OFFLINE_ONLY = {
    "PitchShift": "pedalboard's PitchShift outputs silence when streamed "
    "(reset=False, pedalboard issue #415)",
    "GSMFullRateCompressor": "pedalboard's GSMFullRateCompressor, streamed, does not match "
    "its offline output",
}

# Ranges pedalboard does not check itself: it builds the effect, which then blows up or
# misbehaves (Chorus feedback 1.5 reaches 1e25, Phaser feedback 2 gives NaN). Inclusive bounds,
# None = open; the ranges are JUCE's, whose DSP pedalboard wraps. Values pedalboard checks
# itself are left to its own message.
LIMITS: dict[tuple[str, str], tuple[float | None, float | None]] = {
    ("Chorus", "depth"): (0.0, 1.0),
    ("Chorus", "feedback"): (-1.0, 1.0),
    ("Chorus", "centre_delay_ms"): (1.0, 100.0),
    ("Phaser", "rate_hz"): (0.0, 100.0),
    ("Phaser", "depth"): (0.0, 1.0),
    ("Phaser", "feedback"): (-1.0, 1.0),
    ("Phaser", "mix"): (0.0, 1.0),
    ("Compressor", "attack_ms"): (0.0, None),
    ("Compressor", "release_ms"): (0.0, None),
    ("NoiseGate", "ratio"): (1.0, None),
    ("NoiseGate", "attack_ms"): (0.0, None),
    ("NoiseGate", "release_ms"): (0.0, None),
    ("Limiter", "release_ms"): (0.0, None),
    ("Convolution", "mix"): (0.0, 1.0),
}
# Frequencies that must lie in (0, sample_rate / 2); the upper bound is checked once the chain's
# sample rate is known (EffectChain), the lower one at parse time.
FREQUENCY_ARGUMENTS = frozenset({"cutoff_frequency_hz", "cutoff_hz", "centre_frequency_hz"})
# String arguments with these name endings are file paths that must exist.
PATH_SUFFIXES = ("_filename", "_path", "_file")

PROBE_SECONDS = 0.25  # streaming_latency's probe


@dataclass(frozen=True)
class Argument:
    """One constructor keyword: `type` is pybind11's text (`float`, `bool`,
    `pedalboard_native.LadderFilter.Mode`, `Optional[float]`, ...)."""

    name: str
    type: str
    required: bool
    default: str | None


@dataclass(frozen=True)
class EffectInfo:
    name: str
    cls: type
    arguments: Mapping[str, Argument]

    @property
    def offline_only(self) -> str | None:
        return OFFLINE_ONLY.get(self.name)


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets: `a: Union[str, x] = 1, b: M = <M.X: 0>` -> 2 parts."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([<":
            depth += 1
        elif ch in ")]>":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


_INIT = re.compile(r"__init__\((.*)\)\s*->\s*None\s*$")


def _constructor_arguments(cls: type) -> dict[str, Argument]:
    """Keywords of every `__init__` overload in the pybind11 docstring (merged; an argument is
    required when every overload requires it)."""
    overloads: list[dict[str, Argument]] = []
    doc = cast(Any, cls).__init__.__doc__ or ""
    for line in doc.splitlines():
        match = _INIT.search(line.strip())
        if not match or not match.group(1).startswith("self"):
            continue
        args = {}
        for part in _split_top_level(match.group(1))[1:]:  # [0] is `self: ...`
            name, _, rest = part.partition(":")
            type_text, has_default, default = rest.partition(" = ")
            args[name.strip()] = Argument(
                name.strip(), type_text.strip(), not has_default, default.strip() or None
            )
        overloads.append(args)
    merged: dict[str, Argument] = {}
    for args in overloads:
        for name, arg in args.items():
            required = all(name in o and o[name].required for o in overloads)
            merged.setdefault(name, Argument(arg.name, arg.type, required, arg.default))
    return merged


@functools.cache
def builtin_effects() -> dict[str, EffectInfo]:
    """Every built-in effect pedalboard ships, by class name."""
    classes = {
        name: obj
        for name, obj in vars(pedalboard).items()
        if isinstance(obj, type)
        and issubclass(obj, pedalboard.Plugin)
        and not name.startswith("_")
        and obj.__name__ == name  # not an alias
    }
    bases = {base for cls in classes.values() for base in cls.__mro__[1:]}
    effects = {}
    for name, cls in sorted(classes.items()):
        if cls in bases or issubclass(cls, (pedalboard.PluginContainer, pedalboard.ExternalPlugin)):
            continue  # Plugin, IIRFilter, containers (Chain, Mix, Pedalboard), VST3/AU hosts
        effects[name] = EffectInfo(name, cls, _constructor_arguments(cls))
    return effects


def effect_info(name: object, where: str) -> EffectInfo:
    """The registry entry for `name`, or a ChainError that suggests the nearest names."""
    effects = builtin_effects()
    if isinstance(name, str) and name in effects:
        return effects[name]
    if not isinstance(name, str):
        raise ChainError(f"{where}: 'effect' must be a pedalboard effect name, got {name!r}")
    folded = {n.lower(): n for n in effects}
    near = [folded[name.lower()]] if name.lower() in folded else []
    near += difflib.get_close_matches(name, list(effects), n=3, cutoff=0.6)
    hint = f" (did you mean {' or '.join(dict.fromkeys(near))}?)" if near else ""
    raise ChainError(f"{where}: unknown effect {name!r}{hint}; known: {', '.join(effects)}")


@functools.cache
def _enum_type(type_text: str) -> Any | None:
    """The pybind11 enum named by a dotted type text, or None."""
    module_name, _, path = type_text.partition(".")
    if not path or "[" in type_text:
        return None
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError:
        return None
    for attr in path.split("."):
        obj = getattr(obj, attr, None)
    return obj if hasattr(obj, "__members__") else None


def _number(value: object, where: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ChainError(f"{where}: {name!r} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ChainError(f"{where}: {name!r} must be finite, got {value!r}")
    return float(value)


def _check_value(
    effect: str, arg: Argument, value: object, where: str, base_dir: Path | None
) -> Any:
    """`value` for `arg` as YAML gives it, checked; paths come back absolute, enum members
    as their canonical names."""
    type_text = arg.type
    if type_text.startswith("Optional[") and type_text.endswith("]"):
        if value is None:
            return None
        type_text = type_text[len("Optional[") : -1]
    if value is None:
        raise ChainError(f"{where}: {arg.name!r} must have a value, got null")
    enum = _enum_type(type_text)
    if type_text in ("float", "int"):
        checked: Any = _number(value, where, arg.name)
        if type_text == "int":
            if not checked.is_integer():
                raise ChainError(f"{where}: {arg.name!r} must be a whole number, got {value!r}")
            checked = int(checked)
    elif type_text == "bool":
        if not isinstance(value, bool):
            raise ChainError(f"{where}: {arg.name!r} must be true or false, got {value!r}")
        checked = value
    elif enum is not None:
        members = list(enum.__members__)
        folded = {m.lower(): m for m in members}
        if not isinstance(value, str) or value.lower() not in folded:
            raise ChainError(
                f"{where}: {arg.name!r} must be one of {', '.join(members)}, got {value!r}"
            )
        checked = folded[value.lower()]
    elif type_text == "str" or type_text.startswith("Union[str"):
        if not isinstance(value, str):
            raise ChainError(f"{where}: {arg.name!r} must be a string, got {value!r}")
        checked = value
        if arg.name.endswith(PATH_SUFFIXES):
            checked = str(existing_file(value, where, arg.name, base_dir))
    else:  # a type this module does not know: scalars only, pedalboard judges the rest
        if isinstance(value, int | float) and not isinstance(value, bool):
            _number(value, where, arg.name)
        elif not isinstance(value, str | bool):
            raise ChainError(f"{where}: {arg.name!r} must be a single value, got {value!r}")
        checked = value
    if not isinstance(checked, float):
        return checked
    if arg.name in FREQUENCY_ARGUMENTS and checked <= 0:
        raise ChainError(f"{where}: {arg.name!r} must be above 0 Hz, got {value!r}")
    low, high = LIMITS.get((effect, arg.name), (None, None))
    if (low is not None and checked < low) or (high is not None and checked > high):
        lo, hi = ("-inf" if low is None else f"{low:g}"), ("inf" if high is None else f"{high:g}")
        span = f"{lo} .. {hi}"
        raise ChainError(f"{where}: {arg.name!r} must be in {span}, got {value!r}")
    return checked


def existing_file(value: str, where: str, name: str, base_dir: Path | None) -> Path:
    """`value` as an absolute path (relative: to `base_dir`, the chain file's folder) that
    exists."""
    path = Path(value).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    path = path.absolute()
    if not path.exists():
        raise ChainError(f"{where}: {name!r}: no such file: {path}")
    return path


def check_kwargs(
    info: EffectInfo, kwargs: Mapping[str, object], where: str, base_dir: Path | None,
    chain_keys: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The effect's keyword arguments, each checked against its constructor signature."""
    known = list(info.arguments)
    checked = {}
    for key, value in kwargs.items():
        if key not in info.arguments:
            near = difflib.get_close_matches(str(key), known + list(chain_keys), n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            listed = ", ".join(known) or "none"
            extra = f" (chain keys: {', '.join(chain_keys)})" if chain_keys else ""
            raise ChainError(f"{where}: unknown argument {key!r}{hint}; known: {listed}{extra}")
        checked[key] = _check_value(info.name, info.arguments[key], value, where, base_dir)
    missing = [a.name for a in info.arguments.values() if a.required and a.name not in checked]
    if missing:
        raise ChainError(f"{where}: missing argument {', '.join(map(repr, missing))}")
    return checked


def build_effect(info: EffectInfo, kwargs: Mapping[str, Any], where: str) -> pedalboard.Plugin:
    """Construct the effect from checked kwargs; pedalboard's own range checks become
    ChainErrors naming the item."""
    native = {}
    for key, value in kwargs.items():
        enum = _enum_type(info.arguments[key].type)
        native[key] = enum.__members__[value] if enum is not None else value
    try:
        return info.cls(**native)
    except (ValueError, TypeError, RuntimeError) as error:
        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        message = str(error).strip().splitlines()[0]
        raise ChainError(f"{where}: {message} (given: {given or 'defaults'})") from error


def check_sample_rate(kwargs: Mapping[str, Any], sample_rate: float, where: str) -> None:
    """Frequencies below Nyquist (pedalboard's filters go unstable above it)."""
    for key, value in kwargs.items():
        if key in FREQUENCY_ARGUMENTS and value is not None and value >= sample_rate / 2:
            raise ChainError(
                f"{where}: {key!r} must be below half the sample rate "
                f"({sample_rate / 2:g} Hz), got {value:g}"
            )


def streaming_latency(
    make: Callable[[], pedalboard.Plugin], sample_rate: float, channels: int, block: int
) -> int:
    """Frames an effect holds back when streamed in calls of exactly `block` frames.

    pedalboard compensates an effect's latency by returning fewer frames than it was given
    until the delayed audio comes out (MP3Compressor holds back ~3600 frames, Resample ~450,
    BrickwallLimiter its lookahead; most effects nothing). How much depends on the call sizes,
    hence fixed-size calls, where the holdback repeats exactly: this returns the most it held
    back at a call boundary over a probe of PROBE_SECONDS of noise (codecs and resamplers
    buffer by count, not content). A fresh instance from `make` is probed.
    """
    calls = max(int(PROBE_SECONDS * sample_rate) // block, 16)
    rng = np.random.default_rng(0)
    probe = (0.1 * rng.standard_normal((channels, calls * block))).astype(np.float32)
    plugin = make()
    plugin.reset()
    fed = got = worst = 0
    for start in range(0, calls * block, block):
        got += plugin.process(probe[:, start : start + block], sample_rate, reset=False).size
        fed += block * channels
        worst = max(worst, fed - got)
    return worst // channels
