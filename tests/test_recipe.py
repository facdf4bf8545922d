"""The default-model recipe's plan (jenbridge.training.recipe): what each stage would run on a
fresh machine, where the committed milestones must be continued and never retrained."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from jenbridge.training import recipe as rc


def _flags(argv: list[str]) -> dict[str, str]:
    return {a: b for a, b in itertools.pairwise(argv) if a.startswith("--")}


@pytest.fixture()
def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> rc.Recipe:
    """A fresh home whose repository has both committed milestones (stand-in files: the plan
    only looks at whether they exist)."""
    ae, diff = tmp_path / "repo" / "ae.fp16.safetensors", tmp_path / "repo" / "diff.safetensors"
    ae.parent.mkdir()
    ae.write_bytes(b"ae")
    diff.write_bytes(b"diffusion")
    monkeypatch.setattr(rc, "SHIPPED_AE", ae)
    monkeypatch.setattr(rc, "SHIPPED_DIFFUSION", diff)
    return rc.Recipe(home=tmp_path / "home", threads=2)


def test_fresh_machine_continues_the_milestones(fresh: rc.Recipe) -> None:
    # seeding happens in run_recipe; run only the data-free stages' planning around it
    assert rc.commands(fresh, "autoencoder") == []  # nothing run yet: the shipped one is used
    (fresh.runs / "ae").mkdir(parents=True)
    (fresh.runs / "ae" / "autoencoder.safetensors").write_bytes(b"seeded")
    (fresh.runs / "ae" / "config.json").write_text("{}")  # a stage that started and failed
    assert rc.commands(fresh, "autoencoder") == []  # still frozen: never retrained from step 0
    assert rc.commands(fresh, "stats") == []  # the seeded file carries its statistics
    (latents,) = rc.commands(fresh, "latents")
    assert latents[:2] == ["train", "cache-latents"]
    (diffusion,) = rc.commands(fresh, "diffusion")
    assert _flags(diffusion)["--init-from"] == str(rc.SHIPPED_DIFFUSION)
    (fresh.runs / "diffusion").mkdir()
    (diffusion,) = rc.commands(fresh, "diffusion")
    assert "--init-from" not in diffusion  # a run in progress resumes from its own checkpoint
    *_, bundle = rc.commands(fresh, "export")
    assert _flags(bundle)["--weights"] == "int8"  # the bundle is built as the shipped one is


def test_autoencoder_in_training_resumes(fresh: rc.Recipe) -> None:
    (fresh.runs / "ae" / "checkpoints" / "step_00000100").mkdir(parents=True)
    (cmd,) = rc.commands(fresh, "autoencoder")
    assert _flags(cmd)["--steps"] == "3500" and _flags(cmd)["--run-dir"] == str(fresh.runs / "ae")


def test_without_milestones_everything_trains(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rc, "SHIPPED_AE", tmp_path / "none.safetensors")
    monkeypatch.setattr(rc, "SHIPPED_DIFFUSION", tmp_path / "none2.safetensors")
    r = rc.Recipe(home=tmp_path / "home")
    assert rc.commands(r, "autoencoder")[0][:2] == ["train", "autoencoder"]
    assert "--init-from" not in rc.commands(r, "diffusion")[0]
    with pytest.raises(ValueError, match="unknown stage"):
        rc.commands(r, "mastering")


def _weights(path: Path, step: int) -> None:
    """A safetensors file with only the step in its metadata (all the plan reads)."""
    import numpy as np
    from safetensors.numpy import save_file

    save_file({"x": np.zeros(1, np.float32)}, str(path), metadata={"step": str(step)})


def test_decoder_stage_fine_tunes_once_and_the_bundle_takes_it(fresh: rc.Recipe) -> None:
    ae_file = fresh.runs / "ae" / "autoencoder.safetensors"
    ae_file.parent.mkdir(parents=True)
    _weights(ae_file, 3500)  # the frozen autoencoder before its decoder was fine-tuned
    (cmd,) = rc.commands(fresh, "decoder")
    flags = _flags(cmd)
    assert flags["--init-from"] == str(ae_file) and flags["--steps"] == "8500"
    assert "autoencoder_training.trainable=decoder" in cmd
    export_ae = rc.commands(fresh, "export")[0]
    assert _flags(export_ae)["--run-dir"] == str(ae_file)  # nothing fine-tuned yet
    (fresh.runs / "ae_decoder" / "checkpoints" / "step_00004000").mkdir(parents=True)
    assert rc.commands(fresh, "decoder")  # in progress: resumes
    export_ae, _, bundle = rc.commands(fresh, "export")
    assert _flags(export_ae)["--run-dir"] == _flags(bundle)["--autoencoder"] == str(
        fresh.runs / "ae_decoder")


def test_decoder_stage_skipped_when_the_committed_one_is_fine_tuned(fresh: rc.Recipe) -> None:
    ae_file = fresh.runs / "ae" / "autoencoder.safetensors"
    ae_file.parent.mkdir(parents=True)
    _weights(ae_file, 8500)
    assert rc.commands(fresh, "decoder") == []


def test_cli_options_reach_the_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from jenbridge.cli import main

    seen: list[tuple[rc.Recipe, tuple[str, ...]]] = []
    monkeypatch.setattr(rc, "run_recipe", lambda r, stages: seen.append((r, stages)) or 0)
    assert main(["train", "recipe", "default", "--home", str(tmp_path), "--steps", "123",
                 "--decoder-steps", "9000", "--ae-steps", "77", "--threads", "3"]) == 0
    (r, stages), = seen
    assert (r.diffusion_steps, r.decoder_steps, r.ae_steps, r.threads) == (123, 9000, 77, 3)
    assert stages == rc.STAGES
