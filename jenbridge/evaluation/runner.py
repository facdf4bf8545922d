"""Run an evaluation: open the bundles, pick the clips, run the suites, write the report.

    report = evaluate(EvalRequest(model=Path("bundles/mine"), data=Path("data/builtin"),
                                  out=Path("eval/mine")))

The serving path only (ONNX Runtime engines); torch is imported by the aisfx embedding model
alone, and only when a suite needs embeddings (t2m).
"""

from __future__ import annotations

import contextlib
import platform
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from jenbridge.evaluation import adherence, tasks
from jenbridge.evaluation.context import Context, Model, Settings

SUITES: dict[str, Callable[[Context], dict[str, Any]]] = {
    "autoencoder": tasks.autoencoder,
    "t2m": tasks.text_to_music,
    "inpaint": tasks.inpainting,
    "continue": tasks.continuation,
    "tempo": adherence.tempo,
    "key": adherence.key,
    "vary": adherence.variation,
}


@dataclass(frozen=True)
class EvalRequest:
    """model: the bundle under test; early: earlier checkpoints (bundles) shown beside it;
    train_steps: bundle path -> training step (else the manifest's diffusion_steps)."""

    model: Path
    data: Path
    out: Path
    early: tuple[Path, ...] = ()
    train_steps: dict[str, int] = field(default_factory=dict)
    suites: tuple[str, ...] = tuple(SUITES)
    clips: int = 32
    probe_per_class: int = 8
    embedding: str = "aisfx"
    settings: Settings = field(default_factory=Settings)
    providers: str | None = None
    threads: int | None = None


def check_suites(names: Sequence[str]) -> tuple[str, ...]:
    unknown = [n for n in names if n not in SUITES]
    if unknown or not names:
        raise ValueError(f"unknown suite(s) {', '.join(unknown) or '(none given)'}; choose "
                         f"from {', '.join(SUITES)}")
    return tuple(dict.fromkeys(names))


def _step(bundle: Path, manifest: Any, given: dict[str, int]) -> int | None:
    for key in (str(bundle), str(bundle.resolve())):
        if key in given:
            return int(given[key])
    step = manifest.training.get("diffusion_steps")
    return int(step) if isinstance(step, int) else None


def open_models(req: EvalRequest) -> list[Model]:
    """Engines for the model and each early checkpoint; labels "model", "early@STEP"."""
    from jenbridge.engine import Engine

    models: list[Model] = []
    for i, bundle in enumerate((req.model, *req.early)):
        engine = Engine(bundle, providers=req.providers, threads=req.threads)
        step = _step(Path(bundle), engine.manifest, req.train_steps)
        label = "model" if i == 0 else (f"early@{step}" if step is not None else f"early-{i}")
        if any(m.label == label for m in models):
            label = f"{label}-{i}"
        models.append(Model(label, str(bundle), step, engine))
    first = models[0].engine
    for m in models[1:]:
        if (m.engine.sample_rate, m.engine.channels) != (first.sample_rate, first.channels):
            raise ValueError(f"{m.bundle} works at {m.engine.sample_rate} Hz x"
                             f"{m.engine.channels}, the model at {first.sample_rate} Hz x"
                             f"{first.channels}: compare bundles of one format")
    return models


def evaluate(req: EvalRequest, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the requested suites and write report.json and the PNGs to req.out.

    With req.threads, numpy's BLAS pool is held to that many threads too: an OpenBLAS pool
    wider than the free cores spins, and one 512 x 512 eigendecomposition took 100x longer
    (5 s instead of 0.02 s) beside a training run on 2 cores."""
    if not Path(req.data).is_dir():
        raise ValueError(f"dataset folder {req.data} does not exist")
    with contextlib.ExitStack() as stack:
        if req.threads:
            try:
                from threadpoolctl import threadpool_limits
            except ImportError:  # librosa brings it (through scikit-learn); else no limit
                pass
            else:
                stack.enter_context(threadpool_limits(limits=req.threads))
        return _evaluate(req, log)


def _evaluate(req: EvalRequest, log: Callable[[str], None]) -> dict[str, Any]:
    from jenbridge.evaluation import plots, report
    from jenbridge.evaluation.clips import load_clips

    suites = check_suites(req.suites)
    start = time.perf_counter()
    req.out.mkdir(parents=True, exist_ok=True)
    models = open_models(req)
    sr, channels = models[0].engine.sample_rate, models[0].engine.channels
    clips, probe, data = load_clips(req.data, sr, channels, req.clips, req.settings.seconds,
                                    req.probe_per_class if "t2m" in suites else 0)
    log(f"evaluating {', '.join(m.label for m in models)} on {len(clips)} clip(s) of "
        f"{data['split']} ({len(probe)} probe clip(s)); suites: {', '.join(suites)}")
    ctx = Context(clips, probe, models, req.settings, sr, channels,
                  embedder_name=req.embedding, threads=req.threads)
    long = req.settings.continuation_seconds
    if "continue" in suites and long != req.settings.seconds:
        ctx.continue_clips, _, data["continue"] = load_clips(req.data, sr, channels, req.clips,
                                                             long, 0)
        log(f"continuation: {len(ctx.continue_clips)} excerpt(s) of {long:g} s")
    results: dict[str, Any] = {}
    with warnings.catch_warnings():
        # librosa warns about short analysis frames and scipy about singular covariances of
        # small embedding sets; both are expected here, and the report notes the sizes
        warnings.filterwarnings("ignore", category=UserWarning, module="librosa")
        warnings.filterwarnings("ignore", message="Matrix is singular")
        for name in suites:
            t0 = time.perf_counter()
            results[name] = SUITES[name](ctx)
            results[name]["wall_seconds"] = round(time.perf_counter() - t0, 2)
            log(f"  {name}: {results[name]['wall_seconds']:.1f} s")
    model_rows = [{"label": m.label, "bundle": m.bundle, "step": m.step,
                   "name": m.engine.manifest.name, "providers": list(m.engine.providers)}
                  for m in models]
    out: dict[str, Any] = {
        "format": "jenbridge-eval", "version": 1,
        "settings": {**asdict(req.settings), "suites": list(suites), "clips": req.clips,
                     "probe_clips_per_class": req.probe_per_class},
        "models": model_rows,
        "data": data,
        "embedding": _embedding_info(ctx),
        "suites": results,
    }
    out["targets"] = report.targets(results, model_rows)
    out["wall_seconds"] = round(time.perf_counter() - start, 2)
    out["machine"] = {"python": platform.python_version(), "processor": platform.machine()}
    report.write_json(out, req.out / "report.json")
    plots.write_all(out, ctx.examples, sr, req.out)
    return out


def _embedding_info(ctx: Context) -> dict[str, Any]:
    e = ctx.embedder
    if e is None:
        return {"name": ctx.embedder_name, "used": False}
    return {"name": e.name, "package_version": e.version, "dim": e.dim,
            "window_seconds": round(e.window_seconds, 4), "used": True}
