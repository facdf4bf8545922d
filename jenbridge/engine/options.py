"""Per-request options of the engine, validated into one frozen record.

Every public engine call takes the same sampling options; `resolve_options` checks them and
fills the bundle's defaults, raising ValueError with the option's name on a bad value:

- seed: None (a fresh random seed, reported in the Result) or an int in [0, 2**63).
- steps: sampler steps, 1..timesteps (bundle default, e.g. 25 for `small`).
- guidance: classifier-free guidance scale >= 0 (1 = conditional only, 0 = unconditional).
- sampler: "ddim" or "dpmpp_2m" (jenbridge.diffusion.samplers.SAMPLERS).
- bpm / key / meter: musical conditions (jenbridge.conditions): None = unset (null);
  bpm in 20..400 (0 or less is refused), key a name like "A minor" / "F#m" / "none" or a
  code, meter 1..16 or "7/8".
  A meter of 0 is refused: leave it None to unset it.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from jenbridge.bundle import SamplerDefaults
from jenbridge.conditions import MusicalConditions, check_bpm, check_meter, key_code
from jenbridge.diffusion.samplers import SAMPLERS

Progress = Callable[[float, str], None]
ShouldStop = Callable[[], bool]
MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class Options:
    """Validated sampling options of one request (see the module docstring)."""

    seed: int
    steps: int
    guidance: float
    sampler: str
    conditions: MusicalConditions


def check_prompt(prompt: object) -> str:
    """A prompt must be a string (the empty string asks for no text condition's content)."""
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
    return prompt


def _seed(seed: object) -> int:
    if seed is None:
        return secrets.randbits(63)
    if isinstance(seed, np.integer):
        seed = int(seed)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be a whole number or None, got {seed!r}")
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be in 0..{MAX_SEED}, got {seed}")
    return seed


def _steps(steps: object, default: int, timesteps: int) -> int:
    if steps is None:
        return default
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise ValueError(f"steps must be a whole number, got {steps!r}")
    if not 1 <= steps <= timesteps:
        raise ValueError(f"steps must be in 1..{timesteps}, got {steps}")
    return steps


def _guidance(guidance: object, default: float) -> float:
    if guidance is None:
        return default
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)):
        raise ValueError(f"guidance must be a number, got {guidance!r}")
    value = float(guidance)
    if not math.isfinite(value) or value < 0.0:
        raise ValueError(f"guidance must be a finite number >= 0, got {value}")
    return value


def _sampler(sampler: object, default: str) -> str:
    if sampler is None:
        return default
    if not isinstance(sampler, str) or sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r} (choose from {', '.join(SAMPLERS)})")
    return sampler


def resolve_options(
    defaults: SamplerDefaults,
    seed: Any = None,
    steps: Any = None,
    guidance: Any = None,
    sampler: Any = None,
    bpm: Any = None,
    key: Any = None,
    meter: Any = None,
) -> Options:
    """Check one request's options and fill the bundle's sampler defaults."""
    if isinstance(bpm, int | float) and not isinstance(bpm, bool) and bpm <= 0:
        # 0 is the null code inside the model; a request leaves the tempo unset with None
        raise ValueError(f"bpm must be a tempo in 20..400, got {bpm:g} (leave it unset for "
                         "no tempo)")
    conditions = MusicalConditions(check_bpm(bpm), key_code(key), check_meter(meter))
    return Options(
        seed=_seed(seed),
        steps=_steps(steps, defaults.steps, defaults.timesteps),
        guidance=_guidance(guidance, defaults.guidance),
        sampler=_sampler(sampler, defaults.sampler),
        conditions=conditions,
    )


def check_callbacks(progress: object, should_stop: object) -> None:
    """progress and should_stop must each be callable or None."""
    for name, fn in (("progress", progress), ("should_stop", should_stop)):
        if fn is not None and not callable(fn):
            raise ValueError(f"{name} must be callable or None, got {type(fn).__name__}")


def _unit(value: object, name: str) -> float:
    """A finite number in [0, 1] (bools refused), else ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    number = float(value)
    if not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise ValueError(f"{name} must be in [0, 1], got {number}")
    return number


def check_strength(strength: object) -> float:
    """Variation strength: a number in [0, 1] (0 = the input back, 1 = a fresh generation)."""
    return _unit(strength, "strength")


# continue_'s default groove (see Engine.continue_): what the CLI, the daemon and presets use
# when a request does not say. Measured on the default model (12 held-out clips, 6 s context,
# 4 s continued): continuation tempo within +-3 BPM of the context 0.17 at 0, 0.42 at 0.5,
# 0.58 at 0.7, 0.67 at 0.85 (real continuations: 0.83); log-mel distance to the real
# continuation 1.09 / 0.99 / 0.90 / 0.81, to the looped bar itself 1.06 / 0.95 / 0.86 / 0.77.
# 0.7 keeps most of the gain while the music still moves away from a plain loop.
DEFAULT_GROOVE = 0.7


def check_groove(groove: object) -> float:
    """Continuation groove: a number in [0, 1] (0 = off, 1 = the context's last bar looped)."""
    return _unit(groove, "groove")


def check_crossfade(crossfade: object) -> float:
    """Crossfade length in seconds: a number in [0, 1]."""
    if isinstance(crossfade, bool) or not isinstance(crossfade, (int, float)):
        raise ValueError(f"crossfade must be a number of seconds, got {crossfade!r}")
    value = float(crossfade)
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"crossfade must be in 0..1 seconds, got {value}")
    return value


def check_bars(bars: object) -> float | None:
    """A length in bars: None (unset) or a finite number > 0 (fractions allowed: 2.5 bars)."""
    if bars is None:
        return None
    if isinstance(bars, bool) or not isinstance(bars, (int, float, np.integer, np.floating)):
        raise ValueError(f"bars must be a number of bars, got {bars!r}")
    value = float(bars)
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"bars must be a finite number > 0, got {value}")
    return value


def bars_seconds(bars: float, bpm: float, meter: int) -> float:
    """Seconds of `bars` bars of `meter` beats at `bpm`: bars * meter * 60 / bpm (computed in
    the same order as jenbridge.music.gridlock.region_samples, so the sample counts agree)."""
    return bars * meter * 60.0 / bpm


def check_flag(value: object, name: str) -> bool | None:
    """An on/off option: None (the default applies) or a bool."""
    if value is None or isinstance(value, (bool, np.bool_)):
        return None if value is None else bool(value)
    raise ValueError(f"{name} must be True, False or None, got {value!r}")
