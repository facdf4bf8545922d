"""`jenbridge data`: `data builtin` builds the built-in dataset; `data check` reports on any.

Subcommands are rows of SUBCOMMANDS (name -> help, argument declarer, runner), so another one
(for example `data check`) is one more row. Top-level imports stay light: the builders are
imported when a subcommand runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable


def _builtin_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="dataset folder (created; an existing build "
                   "of the same seed and options is grown, reusing its clips)")
    p.add_argument("--minutes", type=float, required=True, help="total audio to build")
    p.add_argument("--seed", type=int, default=0, help="same seed and size, same dataset")
    p.add_argument("--clip-seconds", type=float, default=10.0, help="length of each clip")
    p.add_argument("--workers", type=int, default=1, help="rendering processes")
    p.add_argument("--heldout-fraction", type=float, default=0.05,
                   help="share of pieces (and music21 works) held out of training")
    p.add_argument("--corpus-fraction", type=float, default=0.25,
                   help="share of pieces arranged from the music21 corpus")
    p.add_argument("--max-clips-per-piece", type=int, default=6,
                   help="a piece gives 1..this many consecutive clips")
    p.add_argument("--format", dest="audio_format", choices=["flac", "wav"], default="flac",
                   help="flac (24-bit) or wav (32-bit float)")
    p.add_argument("--soundfont", default="", help="General MIDI .sf2 (default: FluidR3_GM, "
                   "else pretty_midi's TimGM6mb)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _builtin_run(args: argparse.Namespace) -> int:
    from jenbridge.data.builtin.build import BuildOptions, build
    from jenbridge.data.builtin.summary import summary_lines

    opts = BuildOptions(out=args.out, minutes=args.minutes, seed=args.seed,
                        clip_seconds=args.clip_seconds, workers=args.workers,
                        heldout_fraction=args.heldout_fraction,
                        corpus_fraction=args.corpus_fraction,
                        max_clips_per_piece=args.max_clips_per_piece,
                        audio_format=args.audio_format, sound_font=args.soundfont)
    summary = build(opts, progress=not args.quiet)
    print("\n".join(summary_lines(summary)))
    print(f"manifest: {args.out}/manifest.jsonl   summary: {args.out}/summary.json")
    return 0


def _check_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", help="dataset folder: audio files + manifest.jsonl/.csv (optional)")
    p.add_argument("--sample-rate", type=int, default=48000, help="the training sample rate")
    p.add_argument("--min-seconds", type=float, default=1.0, help="shorter files are skipped")
    p.add_argument("--headers-only", action="store_true",
                   help="read headers only (fast; does not find silent or corrupt bodies)")
    p.add_argument("--estimate", action="store_true",
                   help="estimate missing bpm and key from the audio (librosa), marked estimated")


def _check_run(args: argparse.Namespace) -> int:
    from jenbridge.data.index import scan_dataset

    index = scan_dataset(args.folder, args.sample_rate, args.min_seconds,
                         check_audio=not args.headers_only, estimate=args.estimate)
    print("\n".join(index.report.lines()))
    return 0 if index.clips else 1


def _shards_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", help="dataset folder to pack")
    p.add_argument("--out", required=True, help="folder for shard-NNNNNN.tar files")
    p.add_argument("--per-shard", type=int, default=500, help="clips per shard")
    p.add_argument("--split", default="train", help="which split to pack")
    p.add_argument("--sample-rate", type=int, default=48000)
    p.add_argument("--min-seconds", type=float, default=1.0)


def _shards_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from jenbridge.data.index import scan_dataset
    from jenbridge.data.shards import write_shards

    index = scan_dataset(args.folder, args.sample_rate, args.min_seconds)
    print("\n".join(index.report.lines()))
    shards = write_shards(index, Path(args.out), args.per_shard, args.split)
    if shards:
        last = f"{len(shards) - 1:06d}"
        print(f"wrote {len(shards)} shards: {shards[0].parent}/shard-{{000000..{last}}}.tar")
    return 0 if shards else 1


SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None],
                             Callable[[argparse.Namespace], int]]] = {
    "builtin": ("build the built-in dataset (procedural styles + music21 corpus, rendered "
                "with FluidSynth)", _builtin_arguments, _builtin_run),
    "shards": ("pack a dataset folder into WebDataset tar shards for streaming",
               _shards_arguments, _shards_run),
    "check": ("check a dataset folder and print its summary: hours, files, what was skipped "
              "and why", _check_arguments, _check_run),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    for name, (help_, declare, _) in SUBCOMMANDS.items():
        declare(sub.add_parser(name, help=help_, description=help_))


def run(args: argparse.Namespace) -> int:
    if not getattr(args, "data_command", None):
        raise ValueError(f"choose a subcommand: {', '.join(SUBCOMMANDS)}")
    return SUBCOMMANDS[args.data_command][2](args)
