"""The preset file format: one strict, typed YAML mapping per preset (`presets/*.yaml`).

    description: Drum fill for the selected region          # shown by `jenbridge presets`
    task: inpaint            # generate | inpaint | continue | extend | vary | loop
    prompt: "{genre} drum fill, {feel}, {bpm} BPM"          # a template
    variables: {genre: funk, feel: tight snare rolls}       # defaults for the template
    bars: 1                  # or seconds: 8 (generate, continue, extend, loop)
    bpm: null                # tempo / key / meter defaults (the DAW's values override them)
    key: null
    meter: 4
    steps: 30                # sampler steps, guidance, sampler: the bundle's when absent
    guidance: 4.0
    sampler: dpmpp_2m
    seed: {policy: random}   # fixed (value), random, per_variation (value or random base)
    variations: 1            # takes per request (each its own file)
    strength: 0.5            # vary, loop in vary mode
    crossfade: 0.02          # inpaint/continue/extend seams, loop joins
    groove: 0.6              # continue, loop in continue mode: start from the last bar looped
    grid_lock: true          # null: the engine's default (on for bar lengths)
    loop: {mode: vary, strength: 0.35, iterations: 0}      # task: loop only
    effects: [{effect: Compressor, threshold_db: -14, ratio: 3}]   # plugin_host chain
    output: {format: pcm24, peak_db: -1.0}

Template variables are written `{name}`. `{bpm}`, `{key}` and `{meter}` take the request's
musical values (the DAW's tempo), every other name a value from `variables`, which a request
may override (`var_<name>` over OSC, `--var name=value` on the CLI). A name used in the prompt
that no one gives is an error at request time; a name that is neither a musical one nor in
`variables` is an error when the preset loads, as are unknown keys and wrong types. Errors name
the file and the key.

`groove` (0..1, Engine.continue_) starts the new audio from the input's last bar looped, noised
to the level 1 - groove: it keeps a continuation in tempo (0 = off; unset: the engine's default,
jenbridge.engine.options.DEFAULT_GROOVE; it needs a bpm, given or estimated). Only presets that
continue take it: task continue, or loop in mode continue.
"""

from __future__ import annotations

import string
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from jenbridge.conditions import check_bpm, check_meter, key_code

TASKS = ("generate", "inpaint", "continue", "extend", "vary", "loop")
MUSICAL_VARIABLES = ("bpm", "key", "meter")
GROOVE_TASKS = ("continue", "loop")  # the tasks that continue audio (loop: in mode continue)
MAX_VARIATIONS = 16


class PresetError(ValueError):
    """A preset that cannot be used; the message names the file (or preset) and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class SeedPolicy(_Strict):
    """fixed: every take uses `value`; per_variation: take k uses base + k (base = `value`,
    or a fresh random one per request); random: an independent fresh seed per take."""

    policy: Literal["fixed", "random", "per_variation"] = "random"
    value: int | None = Field(None, ge=0, le=2**63 - 1)

    @model_validator(mode="after")
    def _value_needed(self) -> SeedPolicy:
        if self.policy == "fixed" and self.value is None:
            raise ValueError("seed policy 'fixed' needs a value")
        if self.policy == "random" and self.value is not None:
            raise ValueError("seed policy 'random' takes no value (use fixed or per_variation)")
        return self


class LoopSettings(_Strict):
    """Live-loop settings (task: loop): how each iteration follows the last."""

    mode: Literal["continue", "vary"] = "continue"
    source: Literal["last", "first"] = "last"  # vary: vary the last iteration, or the first
    strength: float | None = Field(None, ge=0.0, le=1.0)
    iterations: int = Field(0, ge=0, le=100000)


class OutputOptions(_Strict):
    format: Literal["float32", "pcm24"] | None = None  # None: the daemon's wav_format
    peak_db: float | None = Field(None, ge=-60.0, le=0.0)  # normalise the peak to this level
    sample_rate: int | None = Field(None, ge=8000, le=384000)


class Preset(_Strict):
    name: str
    description: str = ""
    task: Literal["generate", "inpaint", "continue", "extend", "vary", "loop"]
    prompt: str = Field("", max_length=2000)
    variables: dict[str, str] = Field(default_factory=dict)
    seconds: float | None = Field(None, gt=0.0, le=600.0)
    bars: float | None = Field(None, gt=0.0, le=1024.0)
    bpm: float | None = None
    key: str | None = None
    meter: int | None = None
    steps: int | None = Field(None, ge=1, le=1000)
    guidance: float | None = Field(None, ge=0.0, le=100.0)
    sampler: Literal["ddim", "dpmpp_2m"] | None = None
    seed: SeedPolicy = Field(default_factory=lambda: SeedPolicy(policy="random", value=None))
    variations: int = Field(1, ge=1, le=MAX_VARIATIONS)
    strength: float | None = Field(None, ge=0.0, le=1.0)
    crossfade: float | None = Field(None, ge=0.0, le=1.0)
    groove: float | None = Field(None, ge=0.0, le=1.0)
    grid_lock: bool | None = None
    loop: LoopSettings | None = None
    effects: list[dict[str, Any]] = Field(default_factory=list)
    output: OutputOptions = Field(
        default_factory=lambda: OutputOptions(format=None, peak_db=None, sample_rate=None))

    @field_validator("groove")
    @classmethod
    def _groove_continues(cls, groove: float | None, info: ValidationInfo) -> float | None:
        task = info.data.get("task")  # absent when the task itself was refused
        if groove is not None and task is not None and task not in GROOVE_TASKS:
            raise ValueError(f"only presets that continue audio take it (task "
                             f"{' or '.join(GROOVE_TASKS)}), not task {task}")
        return groove

    @model_validator(mode="after")
    def _consistent(self) -> Preset:
        if self.seconds is not None and self.bars is not None:
            raise ValueError("give seconds or bars, not both")
        if self.task == "inpaint" and (self.seconds or self.bars):
            raise ValueError("an inpaint preset takes its length from the request's region")
        if self.task == "vary" and (self.seconds or self.bars):
            raise ValueError("a vary preset keeps the input's length (no seconds or bars)")
        if self.task == "loop" and self.seconds is not None:
            raise ValueError("a loop preset gives its length in bars")
        if self.loop is not None and self.task != "loop":
            raise ValueError("loop settings belong to task: loop")
        if self.groove is not None and self.loop is not None and self.loop.mode != "continue":
            raise ValueError(f"groove shapes a continuation: a loop in mode {self.loop.mode} "
                             "does not use it (leave groove out, or use mode continue)")
        if self.task == "loop" and self.variations != 1:
            raise ValueError("a live loop makes one stream (variations must be 1)")
        if self.seed.policy == "fixed" and self.variations > 1:
            raise ValueError(f"a fixed seed makes {self.variations} identical takes: use "
                             "seed policy per_variation")
        if self.bpm is not None and self.bpm <= 0:
            raise ValueError(f"bpm must be a tempo in 20..400, got {self.bpm:g} (leave it out "
                             "for none)")
        try:
            check_bpm(self.bpm)
            key_code(self.key)
            check_meter(self.meter)
        except ValueError as err:
            raise ValueError(str(err)) from None
        for name in self.variables:
            if name in MUSICAL_VARIABLES:
                raise ValueError(f"variables: {name!r} comes from the request (set `{name}:` "
                                 "instead)")
            if not name.isidentifier():
                raise ValueError(f"variables: {name!r} is not a valid name")
        for name in template_fields(self.prompt):
            if name not in self.variables and name not in MUSICAL_VARIABLES:
                raise ValueError(f"prompt uses {{{name}}}, which is neither in `variables` nor "
                                 f"one of {', '.join(MUSICAL_VARIABLES)}")
        return self


def template_fields(template: str) -> list[str]:
    """The `{name}` fields of a prompt template (format specs and indexing refused)."""
    names = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise ValueError(f"prompt template: {err}") from None
    for _, field, spec, conv in parsed:
        if field is None:
            continue
        if not field.isidentifier() or spec or conv:
            raise ValueError(f"prompt template field {{{field}}} must be a plain name")
        names.append(field)
    return names


def parse_preset(data: Any, name: str, source: str) -> Preset:
    """Validate one preset mapping; PresetError lists every problem as `source: key: reason`."""
    if not isinstance(data, dict):
        raise PresetError(f"{source}: expected a mapping at the top level")
    if "name" in data:
        raise PresetError(f"{source}: name: unknown key (a preset is named by its file)")
    try:
        preset = Preset.model_validate({**data, "name": name})
    except ValidationError as err:
        lines = []
        for e in err.errors():
            key = ".".join(str(p) for p in e["loc"]) or "(top level)"
            msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
            lines.append(f"{source}: {key}: {msg.removeprefix('Value error, ')}")
        raise PresetError("\n".join(lines)) from None
    if preset.effects:
        _check_effects(preset.effects, source)
    return preset


def _check_effects(spec: list[dict[str, Any]], source: str) -> None:
    """The effect chain is validated by plugin_host (every effect built, nothing processed)."""
    from plugin_host import ChainError, parse_chain

    try:
        parse_chain(spec, source=f"{source}: effects")
    except ChainError as err:
        raise PresetError(str(err)) from None
