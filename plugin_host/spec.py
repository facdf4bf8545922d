"""Chain specs: a YAML list of effects and plugins, validated without processing audio.

    - effect: Reverb            # any built-in pedalboard effect, by class name
      room_size: 0.3            # its constructor keywords, unchanged
      mix: 0.5                  # optional dry/wet 0..1 (the effect's own `mix` where it has one)
    - plugin: /usr/lib/vst3/ZaMaximX2.vst3     # a VST3 (or AU on macOS), run out of process
      params: {threshold_db: -6.0}              # parameter values, by pedalboard's names
      state: maximizer.state                    # optional saved state (raw_state bytes)
      timeout_s: 10                             # kill the plugin process after this
    - effect: Gain
      gain_db: -3
      bypass: true              # checked, not run
"""

from __future__ import annotations

import difflib
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from plugin_host.effects import EffectInfo, build_effect, check_kwargs, effect_info, existing_file
from plugin_host.errors import ChainError

DEFAULT_TIMEOUT_S = 10.0
MAX_TIMEOUT_S = 3600.0
EFFECT_CHAIN_KEYS = ("bypass", "mix", "isolate", "timeout_s")
PLUGIN_KEYS = ("plugin", "params", "state", "plugin_name", "timeout_s", "bypass", "mix")
PLUGIN_SUFFIXES = {".vst3": "VST3", ".component": "Audio Unit"}


@dataclass(frozen=True)
class EffectItem:
    """A built-in pedalboard effect. `kwargs` are checked YAML values (absolute paths, enum
    member names); `mix` None = fully wet (or the effect's own `mix`, kept in kwargs)."""

    where: str
    name: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    bypass: bool = False
    mix: float | None = None
    isolate: bool = False  # run in a worker process like a third-party plugin
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def info(self) -> EffectInfo:
        return effect_info(self.name, self.where)

    def payload(self) -> dict[str, Any]:
        """What a worker process needs to build it (plain, picklable)."""
        return {"effect": self.name, "kwargs": dict(self.kwargs), "where": self.where}


@dataclass(frozen=True)
class PluginItem:
    """A third-party VST3 / AU plugin, always hosted in a worker process."""

    where: str
    path: Path
    params: Mapping[str, float | bool | str] = field(default_factory=dict)
    state: Path | None = None
    plugin_name: str | None = None
    bypass: bool = False
    mix: float | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S

    def payload(self) -> dict[str, Any]:
        return {
            "plugin": str(self.path),
            "params": dict(self.params),
            "state": None if self.state is None else str(self.state),
            "plugin_name": self.plugin_name,
            "where": self.where,
        }


ChainItem = EffectItem | PluginItem


@dataclass(frozen=True)
class ChainSpec:
    """A validated chain: items in processing order (bypassed ones included)."""

    items: tuple[ChainItem, ...]
    source: str = "chain"
    description: str = ""

    @property
    def active(self) -> tuple[ChainItem, ...]:
        return tuple(item for item in self.items if not item.bypass)


def _flag(item: Mapping[str, Any], key: str, where: str) -> bool:
    value = item.get(key, False)
    if not isinstance(value, bool):
        raise ChainError(f"{where}: {key!r} must be true or false, got {value!r}")
    return value


def _bounded(item: Mapping[str, Any], key: str, where: str, low: float, high: float) -> float:
    value = item[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ChainError(f"{where}: {key!r} must be a number, got {value!r}")
    if not low <= value <= high:
        raise ChainError(f"{where}: {key!r} must be in {low:g} .. {high:g}, got {value!r}")
    return float(value)


def _timeout(item: Mapping[str, Any], where: str) -> float:
    if "timeout_s" not in item:
        return DEFAULT_TIMEOUT_S
    value = _bounded(item, "timeout_s", where, 0.0, MAX_TIMEOUT_S)
    if value <= 0:
        raise ChainError(f"{where}: 'timeout_s' must be above 0, got {value!r}")
    return value


def _effect(item: Mapping[str, Any], where: str, base_dir: Path | None) -> EffectItem:
    info = effect_info(item["effect"], where)
    where = f"{where} ({info.name})"
    options = {k: item[k] for k in EFFECT_CHAIN_KEYS if k in item}
    kwargs = {k: v for k, v in item.items() if k != "effect" and k not in EFFECT_CHAIN_KEYS}
    mix = None
    if "mix" in options:
        if "mix" in info.arguments:  # the effect's own dry/wet: same meaning, pass it on
            kwargs["mix"] = options["mix"]
        else:
            mix = _bounded(item, "mix", where, 0.0, 1.0)
    checked = check_kwargs(info, kwargs, where, base_dir, chain_keys=EFFECT_CHAIN_KEYS)
    build_effect(info, checked, where)  # pedalboard's own value checks; the instance is dropped
    return EffectItem(
        where=where,
        name=info.name,
        kwargs=checked,
        bypass=_flag(item, "bypass", where),
        mix=mix,
        isolate=_flag(item, "isolate", where),
        timeout_s=_timeout(item, where),
    )


def _plugin(item: Mapping[str, Any], where: str, base_dir: Path | None) -> PluginItem:
    raw = item["plugin"]
    if not isinstance(raw, str) or not raw:
        raise ChainError(f"{where}: 'plugin' must be a path to a .vst3 or .component, got {raw!r}")
    where = f"{where} ({Path(raw).name})"
    unknown = [k for k in item if k not in PLUGIN_KEYS]
    if unknown:
        near = difflib.get_close_matches(str(unknown[0]), PLUGIN_KEYS, n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        raise ChainError(
            f"{where}: unknown key {unknown[0]!r}{hint}; known: {', '.join(PLUGIN_KEYS)} "
            "(plugin parameters go under 'params')"
        )
    suffix = Path(raw).suffix.lower()
    if suffix not in PLUGIN_SUFFIXES:
        raise ChainError(f"{where}: 'plugin' must be a .vst3 or .component, got {raw!r}")
    if suffix == ".component" and sys.platform != "darwin":
        raise ChainError(f"{where}: Audio Unit plugins (.component) load only on macOS")
    params = item.get("params", {})
    if not isinstance(params, Mapping):
        raise ChainError(f"{where}: 'params' must be a mapping of name: value, got {params!r}")
    for name, value in params.items():
        if not isinstance(name, str):
            raise ChainError(f"{where}: parameter names must be strings, got {name!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ChainError(f"{where}: parameter {name!r} must be finite, got {value!r}")
        if not isinstance(value, bool | int | float | str):
            raise ChainError(f"{where}: parameter {name!r} must be a number, true/false or a "
                             f"string, got {value!r}")
    state = item.get("state")
    if state is not None:
        if not isinstance(state, str):
            raise ChainError(f"{where}: 'state' must be a path, got {state!r}")
        state_path: Path | None = existing_file(state, where, "state", base_dir)
    else:
        state_path = None
    path = existing_file(raw, where, "plugin", base_dir)
    plugin_name = item.get("plugin_name")
    if plugin_name is not None and not isinstance(plugin_name, str):
        raise ChainError(f"{where}: 'plugin_name' must be a string, got {plugin_name!r}")
    mix = _bounded(item, "mix", where, 0.0, 1.0) if "mix" in item else None
    return PluginItem(
        where=where,
        path=path,
        params=dict(params),
        state=state_path,
        plugin_name=plugin_name,
        bypass=_flag(item, "bypass", where),
        mix=mix,
        timeout_s=_timeout(item, where),
    )


def parse_chain(spec: object, source: str = "chain", base_dir: Path | None = None) -> ChainSpec:
    """Validate a chain: a list of items (or `{chain: [...], description: "..."}`).

    Each item is `{effect: NAME, **kwargs}` or `{plugin: PATH, params: {...}, state: PATH,
    plugin_name: NAME}`, with optional `bypass`, `mix` (0..1 dry/wet), `timeout_s` and, for
    effects, `isolate` (run out of process). Relative paths resolve against `base_dir` (the
    chain file's folder), else the working directory. Raises ChainError naming the item:
    `{source}[2] (Reverb): unknown argument 'rom_size' ...`. No audio is processed;
    plugins are checked for existence here and loaded by EffectChain.
    """
    if isinstance(spec, ChainSpec):
        return spec
    description = ""
    if isinstance(spec, Mapping):
        unknown = [k for k in spec if k not in ("chain", "description")]
        if unknown or "chain" not in spec:
            raise ChainError(
                f"{source}: a chain is a list of items, or a mapping with 'chain' (the list) and "
                f"optional 'description'; got keys {', '.join(map(repr, spec)) or 'none'}"
            )
        description = spec.get("description") or ""
        if not isinstance(description, str):
            raise ChainError(f"{source}: 'description' must be a string")
        spec = spec["chain"]
    if spec is None:
        spec = []
    if not isinstance(spec, list | tuple):
        raise ChainError(f"{source}: a chain is a list of items, got {type(spec).__name__}")
    items: list[ChainItem] = []
    for index, item in enumerate(spec):
        where = f"{source}[{index}]"
        if not isinstance(item, Mapping):
            raise ChainError(f"{where}: an item is a mapping like {{effect: Reverb}}, got {item!r}")
        kinds = [k for k in ("effect", "plugin") if k in item]
        if len(kinds) != 1:
            raise ChainError(
                f"{where}: needs exactly one of 'effect' (a pedalboard effect name) or 'plugin' "
                f"(a .vst3 path), got keys {', '.join(map(repr, item)) or 'none'}"
            )
        if kinds[0] == "effect":
            items.append(_effect(item, where, base_dir))
        else:
            items.append(_plugin(item, where, base_dir))
    return ChainSpec(tuple(items), source, description)


def load_chain_file(path: str | Path) -> ChainSpec:
    """Parse a chain YAML file (yaml.safe_load); every error names the file."""
    path = Path(path).expanduser().absolute()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ChainError(f"{path}: cannot read the chain file: {error.strerror}") from error
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ChainError(f"{path}: not valid YAML: {error}") from error
    return parse_chain(data, source=f"{path}: chain", base_dir=path.parent)
