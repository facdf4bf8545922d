"""Applying a preset to a request: its fields become defaults, the request overrides any of them.

The daemon and the CLI share this. A request is a dict in the OSC key vocabulary (docs/osc.md:
`seconds`, `bars`, `bpm`, `steps`, ...): `merge_request` fills what the request left out from
the preset, `render_prompt` fills the prompt template, `take_seeds` turns the seed policy into
one seed per take.
"""

from __future__ import annotations

import math
import secrets
from typing import Any

from jenbridge.conditions import key_code, key_name
from jenbridge.presets.schema import MAX_VARIATIONS, Preset, PresetError, template_fields

# preset field -> request key, where the two share a meaning
_DIRECT = ("bpm", "key", "meter", "steps", "guidance", "sampler", "strength", "crossfade",
           "groove")
MAX_SEED = 2**63 - 1


def has_length(kv: dict[str, Any]) -> bool:
    """Does the request give its own length (seconds, bars, or a whole start..end region)?"""
    if "seconds" in kv or "bars" in kv:
        return True
    forms = ("", "_samples", "_sec")
    return any(f"start{f}" in kv for f in forms) and any(f"end{f}" in kv for f in forms)


def merge_request(preset: Preset, kv: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    """The request's keys over the preset's defaults (only keys the task accepts).

    A request that gives a length (seconds, bars or a region) replaces the preset's length
    entirely, so `bars` from a preset never fights the DAW's selection.
    """
    out: dict[str, Any] = {}
    for name in _DIRECT:
        value = getattr(preset, name)
        if value is not None and name in allowed:
            out[name] = value
    if not has_length(kv):
        if preset.seconds is not None and "seconds" in allowed:
            out["seconds"] = preset.seconds
        if preset.bars is not None and "bars" in allowed:
            out["bars"] = preset.bars
    if preset.grid_lock is not None and "grid_lock" in allowed:
        out["grid_lock"] = int(preset.grid_lock)
    out.update(kv)
    return out


def loop_request(preset: Preset) -> dict[str, Any]:
    """A loop preset as /jb/loop/start keys (the request's own keys go over these)."""
    out: dict[str, Any] = {n: getattr(preset, n) for n in _DIRECT
                           if getattr(preset, n) is not None}
    if preset.bars is not None:
        out["bars"] = preset.bars
    if preset.loop is not None:
        out["mode"] = preset.loop.mode
        out["source"] = preset.loop.source
        out["iterations"] = preset.loop.iterations
        if preset.loop.strength is not None:
            out["strength"] = preset.loop.strength
    if preset.seed.value is not None:
        out["seed"] = preset.seed.value
    return out


def _musical_text(name: str, value: Any) -> str:
    if name == "key":
        label = key_name(key_code(value))
        return label if label not in (None, "none") else "atonal"
    if name == "bpm":
        return f"{float(value):g}"
    return str(int(value))


def render_prompt(preset: Preset, overrides: dict[str, str], musical: dict[str, Any]) -> str:
    """The preset's prompt template filled from its variables, the request's `var_*` values and
    the request's bpm / key / meter. Unknown override names and unset fields are errors."""
    for name in overrides:
        if name not in preset.variables:
            known = ", ".join(sorted(preset.variables)) or "none"
            raise PresetError(f"preset {preset.name!r} has no variable {name!r} (its variables: "
                              f"{known})")
    values = {**preset.variables, **overrides}
    for name in ("bpm", "key", "meter"):
        value = musical.get(name)
        if value is not None and value != 0:
            values[name] = _musical_text(name, value)
    missing = [n for n in template_fields(preset.prompt) if n not in values]
    if missing:
        raise PresetError(f"preset {preset.name!r}: its prompt uses "
                          + ", ".join(f"{{{n}}}" for n in missing)
                          + "; send " + " and ".join(missing) + " with the request")
    return preset.prompt.format(**values)


def take_seeds(preset: Preset | None, variations: int, seed: int | None) -> list[int]:
    """One seed per take. With the request's own `seed`, take k gets seed + k (whatever the
    preset's policy: the request asked for reproducible takes)."""
    if not 1 <= variations <= MAX_VARIATIONS:
        raise PresetError(f"variations must be in 1..{MAX_VARIATIONS}, got {variations}")
    policy = preset.seed.policy if preset is not None else "per_variation"
    if seed is not None:
        return [(seed + k) % (MAX_SEED + 1) for k in range(variations)]
    if policy == "fixed":
        assert preset is not None and preset.seed.value is not None  # the schema's rule
        if variations > 1:
            raise PresetError(f"preset {preset.name!r} has a fixed seed: {variations} takes "
                              "would be identical (send a seed, or use per_variation)")
        return [preset.seed.value]
    if policy == "random":
        return [secrets.randbits(63) for _ in range(variations)]
    base = preset.seed.value if preset is not None and preset.seed.value is not None \
        else secrets.randbits(63)
    return [(base + k) % (MAX_SEED + 1) for k in range(variations)]


def peak_normalize(audio: Any, peak_db: float | None) -> Any:
    """Scale (C, N) audio so its sample peak sits at `peak_db` dBFS (silence is left alone)."""
    import numpy as np

    if peak_db is None:
        return audio
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak <= 0.0 or not math.isfinite(peak):
        return audio
    return (audio * (10.0 ** (peak_db / 20.0) / peak)).astype(np.float32)
