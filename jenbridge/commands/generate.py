"""`jenbridge generate | inpaint | continue | extend | vary`: the offline engine on files.

  jenbridge generate --prompt "warm lo-fi piano" --seconds 10 -o out.wav
  jenbridge inpaint IN.wav --region 2.0:4.5 [--region 6:7] --prompt "drum fill" -o out.wav
  jenbridge continue IN.wav --seconds 8 --prompt "..." [--groove 0.7] -o out.flac
  jenbridge extend IN.wav --seconds 4 --prompt "..." -o out.wav       (prepends)
  jenbridge vary IN.wav --strength 0.5 --prompt "..." -o out.ogg

One module declares the five commands: `add_arguments` reads which one it is building from the
subparser's prog ("jenbridge inpaint"); `run` reads it back from `args.task`. Inputs are any
file soundfile reads; the output format follows the extension (.wav 32-bit float, .flac 24-bit,
.ogg Vorbis) at the input's rate and channel count (generate: --sample-rate, --channels). An
existing output is never replaced without --overwrite, and the file is written atomically
(a temporary file in the same folder, then a rename). Torch is never imported.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

TASKS = ("generate", "inpaint", "continue", "extend", "vary")
HELP = {
    "generate": "make music from a text prompt (text-to-music)",
    "inpaint": "regenerate regions of an audio file, keeping the rest bit-exact",
    "continue": "append music after an audio file",
    "extend": "prepend music before an audio file",
    "vary": "make a variation of an audio file",
}
# rows for jenbridge.cli.COMMANDS: name -> (help, module)
CLI_ROWS = {task: (HELP[task], "jenbridge.commands.generate") for task in TASKS}
FORMATS = {".wav": ("WAV", "FLOAT"), ".flac": ("FLAC", "PCM_24"), ".ogg": ("OGG", "VORBIS")}
DEFAULT_BUNDLE = Path(__file__).resolve().parent.parent / "assets" / "default"


def _task_of(parser: argparse.ArgumentParser) -> str:
    """Which command a subparser is for, from its prog ("jenbridge inpaint" -> "inpaint")."""
    name = parser.prog.split()[-1] if parser.prog else ""
    return name if name in TASKS else "generate"


def _region(text: str) -> tuple[float, float]:
    start, sep, end = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return float(start), float(end)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"region {text!r} is not START:END in seconds (e.g. 2.0:4.5)") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    task = _task_of(p)
    p.set_defaults(task=task)
    if task != "generate":
        p.add_argument("input", type=Path, metavar="IN", help="input audio file (wav, flac, ogg, "
                       "mp3, aiff, ...; any sample rate, mono or stereo)")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="output file; the format follows the extension: .wav, .flac, .ogg")
    p.add_argument("-p", "--prompt", help="text prompt (default: the preset's, else none)")
    pre = p.add_argument_group("presets (presets/*.yaml; any option given here overrides the "
                               "preset's value)")
    pre.add_argument("--preset", metavar="NAME", help="apply a preset by name (`jenbridge "
                     "presets` lists them); it must be one for this command")
    pre.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                     help="a value for the preset's prompt template, e.g. --var genre=funk")
    pre.add_argument("--variations", type=int, help="takes to make (default: the preset's, "
                     "else 1); take k > 1 is written to OUT_k.ext")
    pre.add_argument("--no-effects", dest="effects", action="store_false",
                     help="skip the preset's effect chain")
    pre.add_argument("--presets-dir", type=Path, action="append", default=[], metavar="DIR",
                     help="another folder to look for presets in")
    if task in ("generate", "continue", "extend"):
        what = {"generate": "length of the music", "continue": "seconds to append",
                "extend": "seconds to prepend"}[task]
        length = p.add_mutually_exclusive_group()
        length.add_argument("--seconds", type=float, help=what)
        length.add_argument("--bars", type=float, help="the length in bars instead (needs "
                            "--meter and --bpm; continue/extend: the input's tempo is estimated "
                            "when --bpm is not given); turns the grid lock on")
        p.add_argument("--grid-lock", action=argparse.BooleanOptionalAction, default=None,
                       help="lock the new audio to the DAW grid (beat 1 at its start, beats at "
                            "--bpm); default: on with --bars, off with --seconds")
    if task == "generate":
        p.add_argument("--sample-rate", type=int, default=48000,
                       help="output sample rate in Hz (default 48000)")
        p.add_argument("--channels", type=int, default=2, help="output channels (default 2)")
    if task == "inpaint":
        p.add_argument("--region", type=_region, action="append", required=True,
                       metavar="START:END", help="seconds of the input to regenerate "
                       "(repeat for several regions)")
    if task == "vary":
        p.add_argument("--strength", type=float,
                       help="0 = the input back, 1 = a new piece (same seed as generate); "
                            "required unless the preset gives it")
    if task in ("inpaint", "continue", "extend"):
        p.add_argument("--crossfade", type=float,
                       help="seconds of crossfade at each seam (default: the preset's, else "
                            "0.01)")
        p.add_argument("--no-estimate", dest="estimate", action="store_false",
                       help="do not estimate an unset --bpm / --key from the input audio")
    if task == "continue":
        p.add_argument("--groove", type=float, metavar="G",
                       help="0..1: start the new audio from the input's last bar looped, "
                            "noised to the level 1 - G (keeps it in tempo; needs --bpm or an "
                            "estimated tempo, and the meter, default 4); 0 = plain continuation; "
                            "default: the preset's, else the engine's (reported on stderr)")
    model = p.add_argument_group("model and sampling")
    model.add_argument("--model", type=Path, metavar="BUNDLE",
                       help="model bundle folder (default: the shipped one, "
                            "jenbridge/assets/default)")
    model.add_argument("--seed", type=int, help="random seed (default: a fresh one, printed)")
    model.add_argument("--steps", type=int, help="sampler steps (default: the bundle's)")
    model.add_argument("--guidance", type=float,
                       help="classifier-free guidance scale (default: the bundle's)")
    model.add_argument("--sampler", help="ddim or dpmpp_2m (default: the bundle's)")
    model.add_argument("--bpm", type=float, help="tempo, 20..400 (default: unset)")
    model.add_argument("--key", help='key, e.g. "A minor", "F#m", "none" (default: unset)')
    model.add_argument("--meter", help="beats per bar, e.g. 4 or 7/8 (default: unset)")
    model.add_argument("--providers", help="execution providers to try, comma-separated "
                       "(cuda, coreml, cpu; default: the best that works here)")
    model.add_argument("--threads", type=int, help="CPU threads (default: all available, <= 8)")
    model.add_argument("--window-frames", type=int,
                       help="latent frames per sampler window (default: the training crop)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")


def check_output(path: Path, overwrite: bool) -> tuple[str, str]:
    """(format, subtype) for the output path; ValueError for a bad extension, a missing folder
    or an existing file without overwrite."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"output {path}: unsupported extension {path.suffix or '(none)'!r} "
                         f"(use {', '.join(FORMATS)})")
    if not path.parent.is_dir():
        raise ValueError(f"output folder {path.parent} does not exist")
    if path.exists() and not overwrite:
        raise ValueError(f"output {path} already exists; pass --overwrite to replace it")
    return FORMATS[suffix]


def write_atomic(path: Path, audio: Any, sr: int, overwrite: bool) -> None:
    """Write (C, N) float32 audio to `path`: a temporary file in the same folder, renamed into
    place. Without overwrite the final step is a hard link, which fails if the file appeared
    meanwhile (never clobbers); filesystems without hard links get a checked rename."""
    import soundfile as sf

    fmt, subtype = check_output(path, overwrite)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        sf.write(str(tmp), audio.T, sr, format=fmt, subtype=subtype)
        if overwrite:
            os.replace(tmp, path)
            return
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise ValueError(f"output {path} already exists; pass --overwrite to replace "
                             "it") from None
        except OSError:  # no hard links here (e.g. FAT, some network shares)
            if path.exists():
                raise ValueError(f"output {path} already exists; pass --overwrite") from None
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _bundle(args: argparse.Namespace) -> Path:
    if args.model is not None:
        return args.model
    if not (DEFAULT_BUNDLE / "manifest.json").is_file():
        raise ValueError(f"no shipped model bundle at {DEFAULT_BUNDLE}; pass --model BUNDLE "
                         "(a folder made by `jenbridge export`)")
    return DEFAULT_BUNDLE


def _read_input(path: Path) -> tuple[Any, int]:
    from jenbridge.data.audio import read_audio

    if not path.exists():
        raise ValueError(f"input file {path} does not exist")
    if not path.is_file():
        raise ValueError(f"input {path} is not a file")
    return read_audio(path)


class _Bar:
    """A tqdm bar on stderr driven by the engine's progress(fraction, stage) callback."""

    def __init__(self, enabled: bool) -> None:
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=1000, unit="‰", file=sys.stderr, leave=False,
                            bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")

    def __call__(self, fraction: float, stage: str) -> None:
        if self.bar is not None:
            self.bar.set_description_str(stage, refresh=False)
            self.bar.update(round(fraction * 1000) - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _precheck(args: argparse.Namespace, task: str, bundle: Path, source: Any,
              sampling: dict[str, Any]) -> None:
    """The checks that need no sessions, so a mistake is reported before the model loads
    (the engine checks everything again)."""
    from jenbridge.bundle import read_manifest
    from jenbridge.engine import options, providers, regions

    options.resolve_options(read_manifest(bundle, verify=False).sampler, **sampling)
    providers.parse_providers(args.providers)
    if task in ("generate", "continue", "extend"):
        if args.seconds is not None:
            regions.check_seconds(args.seconds, "seconds", float("inf"))
        bars = options.check_bars(args.bars)
        if bars is not None and (not args.meter or (task == "generate" and not args.bpm)):
            raise ValueError("--bars needs --bpm and --meter (seconds = bars * meter * 60 / bpm)")
    if task == "vary":
        options.check_strength(args.strength)
    if task == "continue":
        options.check_groove(args.groove)
    if task == "inpaint":
        audio, sr = source
        regions.check_regions(args.region, audio.shape[1] / sr)


def _apply_preset(args: argparse.Namespace, task: str) -> Any:
    """Fill every option the user left unset from --preset; returns the preset (or None).
    Without a preset, checks the options a preset could have supplied."""
    preset = None
    if args.preset is not None:
        from jenbridge.presets import PresetLibrary

        preset = PresetLibrary(args.presets_dir).get(args.preset)
        if preset.task != task:
            raise ValueError(f"preset {preset.name!r} is a {preset.task} preset; use it with "
                             f"`jenbridge {preset.task}`" if preset.task != "loop" else
                             f"preset {preset.name!r} is a live-loop preset (use it from the "
                             "daemon: /jb/loop/start or /jb/run)")
        for name in ("steps", "guidance", "sampler", "bpm", "key", "meter", "strength",
                     "crossfade", "groove", "grid_lock"):
            if getattr(args, name, None) is None and getattr(preset, name) is not None:
                setattr(args, name, getattr(preset, name))
        if task in ("generate", "continue", "extend") and args.seconds is None \
                and args.bars is None:
            args.seconds, args.bars = preset.seconds, preset.bars
        if args.variations is None:
            args.variations = preset.variations
    elif args.var:
        raise ValueError("--var fills a preset's prompt template: give --preset too")
    if task in ("generate", "continue", "extend") and args.seconds is None and args.bars is None:
        raise ValueError("give --seconds or --bars (or a preset with a length)")
    if task == "vary" and args.strength is None:
        raise ValueError("give --strength (or a preset with one)")
    if getattr(args, "crossfade", 0.0) is None:
        args.crossfade = 0.01
    if task == "continue" and args.groove is None:
        from jenbridge.engine.options import DEFAULT_GROOVE

        args.groove = DEFAULT_GROOVE
    if args.variations is None:
        args.variations = 1
    if args.prompt is None:
        args.prompt = _preset_prompt(preset, args) if preset is not None else ""
    return preset


def _preset_prompt(preset: Any, args: argparse.Namespace) -> str:
    from jenbridge.presets import render_prompt

    overrides = {}
    for item in args.var:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--var {item!r} is not NAME=VALUE")
        overrides[name.strip()] = value
    return render_prompt(preset, overrides, {"bpm": args.bpm, "key": args.key,
                                             "meter": args.meter})


def take_paths(output: Path, takes: int) -> list[Path]:
    """OUT.ext for the first take, OUT_2.ext, OUT_3.ext ... for the others."""
    return [output] + [output.with_name(f"{output.stem}_{k}{output.suffix}")
                       for k in range(2, takes + 1)]


def run(args: argparse.Namespace) -> int:
    import logging

    from jenbridge.engine import Engine
    from jenbridge.presets import peak_normalize, take_seeds

    task = getattr(args, "task", None) or "generate"
    preset = _apply_preset(args, task)
    seeds = take_seeds(preset, args.variations, args.seed)
    outputs = take_paths(args.output, len(seeds))
    for out in outputs:
        check_output(out, args.overwrite)  # fail before any model work
    chain = _effects(preset, args) if preset is not None and args.effects else None
    source = _read_input(args.input) if task != "generate" else None
    bundle = _bundle(args)
    sampling: dict[str, Any] = dict(seed=seeds[0], steps=args.steps, guidance=args.guidance,
                                    sampler=args.sampler, bpm=args.bpm, key=args.key,
                                    meter=args.meter)
    _precheck(args, task, bundle, source, sampling)
    length: dict[str, Any] = {}
    if task in ("generate", "continue", "extend"):
        length = dict(bars=args.bars, grid_lock=args.grid_lock)
    if task in ("inpaint", "continue", "extend"):
        sampling["estimate_conditions"] = args.estimate
    logging.basicConfig(level=logging.WARNING, format="jenbridge: %(message)s")
    engine = Engine(bundle, providers=args.providers, threads=args.threads,
                    window_frames=args.window_frames)
    for k, (seed, out) in enumerate(zip(seeds, outputs)):
        bar = _Bar(not args.quiet)
        sampling.update(seed=seed, progress=bar)
        try:
            result = _call(engine, task, args, source, length, sampling)
        finally:
            bar.close()
        audio = result.audio
        if chain is not None:
            audio = _wet(chain, task, args, audio, result.sample_rate)
        audio = peak_normalize(audio, preset.output.peak_db if preset is not None else None)
        write_atomic(out, audio, result.sample_rate, args.overwrite)
        if k == 0:
            _report_musical(result, getattr(args, "groove", None))
        if not args.quiet:
            print(f"wrote {out} ({result.seconds:.2f} s, {result.sample_rate} Hz, "
                  f"{result.audio.shape[0]} ch) seed {result.seed}, {result.steps} steps x "
                  f"{result.windows} window(s), {result.timings['total']:.2f} s on "
                  f"{', '.join(result.providers)}")
    return 0


def _call(engine: Any, task: str, args: argparse.Namespace, source: Any,
          length: dict[str, Any], sampling: dict[str, Any]) -> Any:
    if source is None:
        return engine.generate(args.prompt, args.seconds, sample_rate=args.sample_rate,
                               channels=args.channels, **length, **sampling)
    audio, sr = source
    if task == "inpaint":
        return engine.inpaint(audio, sr, args.region, args.prompt, crossfade=args.crossfade,
                              **sampling)
    if task == "continue":
        return engine.continue_(audio, sr, args.seconds, args.prompt, crossfade=args.crossfade,
                                groove=args.groove, **length, **sampling)
    if task == "extend":
        return engine.extend_left(audio, sr, args.seconds, args.prompt,
                                  crossfade=args.crossfade, **length, **sampling)
    return engine.vary(audio, sr, args.strength, args.prompt,
                       **{k: v for k, v in sampling.items() if k != "estimate_conditions"})


def _effects(preset: Any, args: argparse.Namespace) -> Any:
    """The preset's effect chain, checked before any model work (None: it has none)."""
    if not preset.effects:
        return None
    from plugin_host import parse_chain

    return parse_chain(list(preset.effects), source=f"preset {preset.name}")


def _wet(spec: Any, task: str, args: argparse.Namespace, audio: Any, sr: int) -> Any:
    """The audio through the chain; inpainting keeps the input outside the regions exact."""
    import numpy as np

    from plugin_host import EffectChain

    with EffectChain(spec, sr, channels=audio.shape[0]) as chain:
        wet = chain.process(np.ascontiguousarray(audio, dtype=np.float32))
    if task == "inpaint":
        from jenbridge.engine import regions as rg

        spans = rg.region_samples(args.region, sr, audio.shape[1])
        wet = rg.splice(audio, wet, rg.splice_weights(spans, audio.shape[1],
                                                      round(args.crossfade * sr)))
    return wet


def _report_musical(result: Any, groove: float | None = None) -> None:
    """The conditions (given and estimated), the groove a continuation started from (`groove`:
    the one asked for) and the grid lock's stretch, on stderr (always: they change what was
    made)."""
    from jenbridge.daemon.tasks import describe_conditions, describe_groove

    used = describe_conditions(result.conditions)
    if used:
        print(f"jenbridge: conditions {used}", file=sys.stderr)
    if result.estimated:
        found = ", ".join(f"{name} {value:g}" if isinstance(value, float) else
                          f"{name} {value}" for name, value in result.estimated.items())
        print(f"jenbridge: estimated from the input: {found}", file=sys.stderr)
    if describe_groove(result):
        print(f"jenbridge: {describe_groove(result)} (started from the input's last bar looped)",
              file=sys.stderr)
    elif groove:
        why = "no tempo (give --bpm, or leave the estimate on)" if result.conditions.bpm <= 0 \
            else f"it rounds to no sampler step of {result.steps}"
        print(f"jenbridge: groove {groove:g} not applied: {why}", file=sys.stderr)
    if result.grid_lock is not None:
        print(f"jenbridge: {result.grid_lock.describe()}", file=sys.stderr)
