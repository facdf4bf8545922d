"""`jenbridge eval`: evaluate a model bundle on a dataset's held-out split (docs/eval.md).

  jenbridge eval --model BUNDLE --data DATASET --out DIR
  jenbridge eval --model bundles/final --model-early bundles/step2000 --data data/builtin \\
      --out eval/final --suites t2m,inpaint --clips 16 --seconds 8 --steps 10

Writes DIR/report.json (every figure with its baselines next to it, chance levels, targets,
settings) and PNGs (spectrograms, metrics, variation, tempo, training), and prints a table.
Exit 0 even when a target is missed, unless --check-targets.
"""

from __future__ import annotations

import argparse
from pathlib import Path

SUITE_NAMES = "autoencoder,t2m,inpaint,continue,tempo,key,vary"


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") \
            from None
    if not values:
        raise argparse.ArgumentTypeError("empty list")
    return values


def _step(text: str) -> tuple[str, int]:
    path, sep, step = text.rpartition("=")
    if not sep or not path or not step.strip().isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not BUNDLE=STEP")
    return path, int(step)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, required=True, metavar="BUNDLE",
                   help="the model bundle to evaluate")
    p.add_argument("--model-early", type=Path, action="append", default=[], metavar="BUNDLE",
                   help="an earlier checkpoint's bundle, shown beside the model and on the "
                        "training curve (repeat for several)")
    p.add_argument("--train-step", type=_step, action="append", default=[],
                   metavar="BUNDLE=STEP", help="training step of a bundle (default: its "
                   "manifest's training.diffusion_steps)")
    p.add_argument("--data", type=Path, required=True, metavar="DATASET",
                   help="dataset folder (its held-out split; every clip if it has none)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="output folder for report.json and the PNGs (created)")
    p.add_argument("--suites", default=SUITE_NAMES,
                   help=f"comma-separated suites to run (default: {SUITE_NAMES})")
    p.add_argument("--clips", type=int, default=32, help="held-out clips (default 32)")
    p.add_argument("--seconds", type=float, default=10.0,
                   help="seconds of audio per clip and per generation (default 10)")
    p.add_argument("--steps", type=int, help="sampler steps (default: the bundle's)")
    p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    p.add_argument("--embedding", default="aisfx", choices=["aisfx", "basic-pitch"],
                   help="embedding model for the Fréchet distance and text alignment "
                        "(default aisfx)")
    p.add_argument("--probe-clips", type=int, default=8,
                   help="training clips per style for the text-alignment classifier "
                        "(default 8)")
    g = p.add_argument_group("tempo, key and variation")
    g.add_argument("--bpms", type=_floats, default=(70.0, 90.0, 110.0, 130.0, 150.0, 170.0),
                   help="tempo grid, comma-separated (default 70,90,...,170)")
    g.add_argument("--meters", type=_floats, default=(3.0, 4.0),
                   help="meters of the tempo grid, beats per bar (default 3,4)")
    g.add_argument("--tempo-bars", type=float, default=4.0,
                   help="bars generated per tempo run (default 4)")
    g.add_argument("--keys", type=int, default=24,
                   help="requested keys: the first N of C major, C minor, C# major, ... "
                        "(default all 24)")
    g.add_argument("--strengths", type=_floats, default=tuple(round(0.1 * i, 1)
                                                              for i in range(11)),
                   help="variation strengths (default 0,0.1,...,1)")
    g.add_argument("--vary-clips", type=int, default=4,
                   help="clips the variation sweep runs on (default 4)")
    g.add_argument("--continue-seconds", type=float, default=None, metavar="S",
                   help="excerpt length of the continuation suite (default: --seconds); "
                        "longer than a clip joins consecutive clips of one piece where the "
                        "manifest says which follow which (the built-in dataset does): the "
                        "first 60%% is the context, the rest is continued")
    g.add_argument("--grooves", type=_floats, default=None,
                   help="continuation grooves: every model at the first, the model also at "
                        "the others (default: the engine's default groove, then 0 = plain "
                        "continuation)")
    p.add_argument("--providers", help="execution providers to try (cuda, coreml, cpu)")
    p.add_argument("--threads", type=int, help="CPU threads per session")
    p.add_argument("--check-targets", action="store_true",
                   help="exit 1 when a target of the issue is not met")


def _keys(n: int) -> tuple[int, ...]:
    """The first n key codes, majors and minors interleaved by tonic (C, Cm, C#, C#m, ...)."""
    if not 1 <= n <= 24:
        raise ValueError(f"--keys must be 1..24, got {n}")
    order = [code for pc in range(12) for code in (1 + pc, 13 + pc)]
    return tuple(order[:n])


def run(args: argparse.Namespace) -> int:
    from jenbridge.engine.options import DEFAULT_GROOVE
    from jenbridge.evaluation.context import Settings
    from jenbridge.evaluation.report import table
    from jenbridge.evaluation.runner import EvalRequest, check_suites, evaluate

    suites = check_suites([s.strip() for s in args.suites.split(",") if s.strip()])
    meters = tuple(int(m) for m in args.meters)
    if any(m != v or not 1 <= m <= 16 for m, v in zip(meters, args.meters)):
        raise ValueError(f"--meters must be whole numbers of beats in 1..16, got {args.meters}")
    if args.seconds < 2.0:
        raise ValueError("--seconds must be at least 2 (tempo and key need 0.5 s of each part)")
    if args.continue_seconds is not None and args.continue_seconds < 2.0:
        raise ValueError("--continue-seconds must be at least 2")
    if not all(0.0 <= s <= 1.0 for s in args.strengths):
        raise ValueError(f"--strengths must lie in 0..1, got {args.strengths}")
    grooves = args.grooves or (DEFAULT_GROOVE, 0.0)
    if not all(0.0 <= g <= 1.0 for g in grooves):
        raise ValueError(f"--grooves must lie in 0..1, got {args.grooves}")
    settings = Settings(seconds=args.seconds, steps=args.steps, seed=args.seed, bpms=args.bpms,
                        meters=meters, tempo_bars=args.tempo_bars, keys=_keys(args.keys),
                        strengths=args.strengths, vary_clips=args.vary_clips,
                        grooves=tuple(grooves), continue_seconds=args.continue_seconds)
    req = EvalRequest(model=args.model, data=args.data, out=args.out,
                      early=tuple(args.model_early), train_steps=dict(args.train_step),
                      suites=suites, clips=args.clips, probe_per_class=args.probe_clips,
                      embedding=args.embedding, settings=settings, providers=args.providers,
                      threads=args.threads)
    report = evaluate(req)
    print(table(report))
    print(f"report: {args.out / 'report.json'}")
    if args.check_targets and not all(t["met"] for t in report["targets"]):
        return 1
    return 0
