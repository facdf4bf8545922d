"""`jenbridge generate | inpaint | continue | extend | vary`: the offline engine on files.

  jenbridge generate --prompt "warm lo-fi piano" --seconds 10 -o out.wav
  jenbridge inpaint IN.wav --region 2.0:4.5 [--region 6:7] --prompt "drum fill" -o out.wav
  jenbridge continue IN.wav --seconds 8 --prompt "..." -o out.flac
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
    p.add_argument("-p", "--prompt", default="", help="text prompt (default: none)")
    if task in ("generate", "continue", "extend"):
        what = {"generate": "length of the music", "continue": "seconds to append",
                "extend": "seconds to prepend"}[task]
        length = p.add_mutually_exclusive_group(required=True)
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
        p.add_argument("--strength", type=float, required=True,
                       help="0 = the input back, 1 = a new piece (same seed as generate)")
    if task in ("inpaint", "continue", "extend"):
        p.add_argument("--crossfade", type=float, default=0.01,
                       help="seconds of crossfade at each seam (default 0.01)")
        p.add_argument("--no-estimate", dest="estimate", action="store_false",
                       help="do not estimate an unset --bpm / --key from the input audio")
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
    if task == "inpaint":
        audio, sr = source
        regions.check_regions(args.region, audio.shape[1] / sr)


def run(args: argparse.Namespace) -> int:
    import logging

    from jenbridge.engine import Engine

    task = getattr(args, "task", None) or "generate"
    check_output(args.output, args.overwrite)  # fail before any model work
    source = _read_input(args.input) if task != "generate" else None
    bundle = _bundle(args)
    sampling: dict[str, Any] = dict(seed=args.seed, steps=args.steps, guidance=args.guidance,
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
    bar = _Bar(not args.quiet)
    sampling["progress"] = bar
    try:
        if source is None:
            result = engine.generate(args.prompt, args.seconds, sample_rate=args.sample_rate,
                                     channels=args.channels, **length, **sampling)
        else:
            audio, sr = source
            calls = {
                "inpaint": lambda: engine.inpaint(audio, sr, args.region, args.prompt,
                                                  crossfade=args.crossfade, **sampling),
                "continue": lambda: engine.continue_(audio, sr, args.seconds, args.prompt,
                                                     crossfade=args.crossfade, **length,
                                                     **sampling),
                "extend": lambda: engine.extend_left(audio, sr, args.seconds, args.prompt,
                                                     crossfade=args.crossfade, **length,
                                                     **sampling),
                "vary": lambda: engine.vary(audio, sr, args.strength, args.prompt, **sampling),
            }
            result = calls[task]()
    finally:
        bar.close()
    write_atomic(args.output, result.audio, result.sample_rate, args.overwrite)
    _report_musical(result)
    if not args.quiet:
        print(f"wrote {args.output} ({result.seconds:.2f} s, {result.sample_rate} Hz, "
              f"{result.audio.shape[0]} ch) seed {result.seed}, {result.steps} steps x "
              f"{result.windows} window(s), {result.timings['total']:.2f} s on "
              f"{', '.join(result.providers)}")
    return 0


def _report_musical(result: Any) -> None:
    """The estimated conditions and the grid lock's stretch, on stderr (always: they change
    what was made)."""
    if result.estimated:
        found = ", ".join(f"{name} {value:g}" if isinstance(value, float) else
                          f"{name} {value}" for name, value in result.estimated.items())
        print(f"jenbridge: estimated from the input: {found}", file=sys.stderr)
    if result.grid_lock is not None:
        print(f"jenbridge: {result.grid_lock.describe()}", file=sys.stderr)
