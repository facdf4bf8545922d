"""The evaluation report: targets checked against the figures, report.json, a printed table.

report.json holds, per suite, every metric's figure for each model and each baseline (the
"values" map), its unit, which way is better, counts, chance levels where one applies, and
the settings, models, data and embedding model of the run. Every number is finite.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

FD_NOISE_FACTOR = 0.5  # "well below the noise baseline": at most half of it
ALIGNMENT_P = 0.01  # "clearly above chance": one-sided binomial test at this level
CONTINUE_TEMPO_FRACTION = 0.8
INPAINT_SEAM_BASELINE = "crossfade"


def targets(suites: dict[str, Any], models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets for the first model, each with the figures it was judged on."""
    model = models[0]["label"]
    out: list[dict[str, Any]] = []
    t2m = suites.get("t2m")
    if t2m and "style_accuracy" in t2m["metrics"]:
        sa = t2m["metrics"]["style_accuracy"]
        out.append({"target": "text alignment clearly above chance",
                    "rule": f"style accuracy above chance, one-sided binomial p < {ALIGNMENT_P}",
                    "model": sa["values"][model], "chance": sa["chance"],
                    "p_value": sa["p_value_vs_chance"],
                    "met": sa["p_value_vs_chance"] < ALIGNMENT_P and sa["classes"] >= 2})
    if t2m:
        fd = t2m["metrics"]["frechet"]["values"]
        noise = min(fd["white noise"], fd["pink noise"])
        out.append({"target": "Fréchet distance well below the noise baseline",
                    "rule": f"model <= {FD_NOISE_FACTOR} x the lower noise figure",
                    "model": fd[model], "baseline": noise,
                    "met": fd[model] <= FD_NOISE_FACTOR * noise})
        if len(models) > 1:
            early = {m["label"]: fd[m["label"]] for m in models[1:]}
            out.append({"target": "Fréchet distance falling with training",
                        "rule": "model below every earlier checkpoint", "model": fd[model],
                        "baseline": early, "met": all(fd[model] < v for v in early.values())})
    inpaint = suites.get("inpaint")
    if inpaint:
        seam = inpaint["metrics"]["seam"]["values"]
        out.append({"target": "inpainting seams no worse than the crossfade baseline",
                    "rule": "seam ratio <= the crossfade's", "model": seam[model],
                    "baseline": seam[INPAINT_SEAM_BASELINE],
                    "met": seam[model] <= seam[INPAINT_SEAM_BASELINE]})
    cont = suites.get("continue")
    if cont:
        # absent when no context had a measurable tempo: nothing to judge, so not met
        tempo = cont["metrics"].get("tempo_within_3bpm")
        within = tempo["values"] if tempo else {}
        out.append({"target": "continuation tempo within ±3 BPM of the context",
                    "rule": f"on at least {CONTINUE_TEMPO_FRACTION:.0%} of the clips whose "
                            "context has a measurable tempo",
                    "model": within.get(model, 0.0), "baseline": within.get("real"),
                    "clips": (tempo or {}).get("n", {}).get(model),
                    "groove": cont.get("grooves", {}).get(model),
                    "met": within.get(model, 0.0) >= CONTINUE_TEMPO_FRACTION})
    return out


def check_finite(value: Any, where: str = "report") -> None:
    """ValueError naming the first non-finite number in a nested report."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} is not finite ({value})")
    if isinstance(value, dict):
        for k, v in value.items():
            check_finite(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_finite(v, f"{where}[{i}]")


def write_json(report: dict[str, Any], path: Path) -> Path:
    """report.json, written atomically; every number checked finite first."""
    check_finite(report)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False))
    tmp.replace(path)
    return path


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.3e}"
    return str(v)


def table(report: dict[str, Any]) -> str:
    """A compact text table: per suite, one row per metric, one column per system."""
    lines: list[str] = []
    for suite, result in report["suites"].items():
        metrics = result.get("metrics", {})
        systems = list(dict.fromkeys(s for m in metrics.values() for s in m["values"]))
        if not systems:
            continue
        width = max(10, *(len(s) for s in systems))
        head = f"{suite} ({result.get('clips', '?')} runs)"
        lines.append(f"{head:<22}" + "".join(f"{s:>{width + 1}}" for s in systems))
        for name, m in metrics.items():
            arrow = {"higher": " ↑", "lower": " ↓"}.get(m["better"], "")
            label = f"  {name}{arrow}"
            row = "".join(f"{_fmt(m['values'].get(s)):>{width + 1}}" for s in systems)
            extra = f"   chance {m['chance']:.3g}" if "chance" in m else ""
            lines.append(f"{label:<22}{row}{extra}")
    for t in report.get("targets", []):
        mark = "met" if t["met"] else "NOT met"
        lines.append(f"target: {t['target']}: {mark} (model {_fmt(t['model'])}; {t['rule']})")
    return "\n".join(lines)
