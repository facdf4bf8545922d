"""PNG figures of an evaluation run (matplotlib, Agg backend, imported lazily).

- spectrograms.png: log-mel spectrograms of one clip through every task (region / join marked)
- metrics.png: every metric as bars, the models (dark) beside the baselines (light)
- variation.png: latent and mel distance to the source against variation strength
- tempo.png: measured against requested tempo, grid lock off and on; within ±2 % by system
- training.png: Fréchet distance against training step (with the baselines as lines)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

MODEL_COLOUR, BASELINE_COLOUR = "#1f4e79", "#a6bddb"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=80)
    _pyplot().close(fig)
    return path


def spectrograms(examples: dict[str, dict[str, Any]], sr: int, path: Path) -> Path:
    import librosa

    plt = _pyplot()
    rows = max(len(examples), 1)
    fig, axes = plt.subplots(rows, 1, figsize=(10, 2.0 * rows), squeeze=False)
    for ax, (_, ex) in zip(axes[:, 0], examples.items()):
        mono = np.asarray(ex["audio"], dtype=np.float32).mean(axis=0)
        mel = librosa.feature.melspectrogram(y=mono, sr=sr, n_fft=2048, hop_length=512,
                                             n_mels=96)
        db = librosa.power_to_db(mel, ref=max(float(mel.max()), 1e-10), top_db=80.0)
        ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=-80, vmax=0,
                  extent=(0.0, len(mono) / sr, 0, 96))
        for t in ex["marks"]:
            ax.axvline(t, color="cyan", lw=1.2, ls="--")
        ax.set_title(ex["title"], fontsize=9, loc="left")
        ax.set_ylabel("mel band")
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    return _save(fig, path)


def metrics(report: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    models = {m["label"] for m in report["models"]}
    panels = [(suite, name, m) for suite, r in report["suites"].items()
              for name, m in r.get("metrics", {}).items() if m["values"]]
    cols = 4
    rows = max(1, -(-len(panels) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (suite, name, m) in zip(axes.flat, panels):
        systems = list(m["values"])
        vals = np.array([m["values"][s] for s in systems], dtype=np.float64)
        colours = [MODEL_COLOUR if s.split(" + ")[0] in models else BASELINE_COLOUR
                   for s in systems]
        y = np.arange(len(systems))
        ax.barh(y, vals, color=colours)
        ax.set_yticks(y, systems, fontsize=7)
        ax.invert_yaxis()
        if "chance" in m:
            ax.axvline(m["chance"], color="red", ls=":", lw=1, label="chance")
            ax.legend(fontsize=6, loc="lower right")
        arrow = {"higher": " (higher better)", "lower": " (lower better)"}.get(m["better"], "")
        ax.set_title(f"{suite}: {name}{arrow}", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    return _save(fig, path)


def variation(result: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, which in zip(axes, ("latent", "mel")):
        for label, curve in result["curves"].items():
            xs = [float(k) for k in curve]
            ax.plot(xs, [curve[k][which] for k in curve], marker="o", label=label)
        for j, (name, ref) in enumerate(result["references"].items()):
            ax.axhline(ref[which], color=f"C{j + 5}", ls="--", lw=1, label=name)
        ax.set_xlabel("variation strength")
        ax.set_ylabel({"latent": "relative latent L2", "mel": "log-mel L1"}[which])
        ax.set_title(f"{which} distance to the source", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def tempo(result: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    fig, (ax, bar) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    bpms = np.array(sorted({r["bpm"] for r in result["runs"]} or {70.0, 170.0}))
    lo, hi = float(bpms.min()) * 0.8, float(bpms.max()) * 1.2
    top = float(bpms.max()) * 2.2
    span = np.array([lo, hi])
    ax.fill_between(span, span * 0.98, span * 1.02, color="green", alpha=0.2, label="±2 %")
    for r in (2.0, 0.5):
        ax.plot(span, span * r, color="grey", ls=":", lw=1)
    systems = list(dict.fromkeys(r["system"] for r in result["runs"]))
    for j, system in enumerate(systems):
        runs = [r for r in result["runs"] if r["system"] == system]
        ax.scatter([r["bpm"] * (1 + 0.01 * j) for r in runs], [r["measured"] for r in runs],
                   s=18, label=system, marker="os^v"[j % 4])
    ax.set_xlim(lo, hi)
    ax.set_ylim(0, top)
    ax.set_xlabel("requested BPM")
    ax.set_ylabel("measured BPM (librosa)")
    ax.set_title("tempo adherence (dotted: x2, x1/2)", fontsize=9)
    ax.legend(fontsize=7)
    within = result["metrics"]["within_2pct"]["values"]
    octave = result["metrics"]["octave_error"]["values"]
    names = list(within)
    y = np.arange(len(names))
    bar.barh(y - 0.2, [within[n] for n in names], height=0.4, label="within ±2 %")
    bar.barh(y + 0.2, [octave[n] for n in names], height=0.4, label="octave error")
    bar.set_yticks(y, names, fontsize=7)
    bar.invert_yaxis()
    bar.set_xlim(0, 1)
    bar.legend(fontsize=7)
    bar.set_title("fraction of runs", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def training(fd: dict[str, float], models: list[dict[str, Any]], path: Path) -> Path:
    """Fréchet distance of each model bundle against its training step (bundle order where a
    step is unknown), the baselines as horizontal lines."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    labels = {m["label"] for m in models}
    points = [(m["step"] if m["step"] is not None else i, fd[m["label"]], m["label"])
              for i, m in enumerate(models) if m["label"] in fd]
    points.sort()
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", color=MODEL_COLOUR)
    for x, y, label in points:
        ax.annotate(label, (x, y), fontsize=7, textcoords="offset points", xytext=(4, 4))
    for j, (name, v) in enumerate((k, v) for k, v in fd.items() if k not in labels):
        ax.axhline(v, color=f"C{j + 1}", ls="--", lw=1, label=name)
    ax.set_xlabel("training step (diffusion)" if all(m["step"] is not None for m in models)
                  else "training step, or bundle order where unknown")
    ax.set_ylabel("Fréchet distance to held-out audio")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def write_all(report: dict[str, Any], examples: dict[str, dict[str, Any]], sr: int,
              out: Path) -> list[Path]:
    """Every figure that the run's suites give; returns the paths written."""
    paths = [metrics(report, out / "metrics.png")]
    if examples:
        paths.append(spectrograms(examples, sr, out / "spectrograms.png"))
    suites = report["suites"]
    if "vary" in suites:
        paths.append(variation(suites["vary"], out / "variation.png"))
    if "tempo" in suites:
        paths.append(tempo(suites["tempo"], out / "tempo.png"))
    if "t2m" in suites:
        paths.append(training(suites["t2m"]["metrics"]["frechet"]["values"], report["models"],
                              out / "training.png"))
    return paths
