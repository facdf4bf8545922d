"""Two processes with torchrun (gloo, CPU) == one process on the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from jenbridge.training.checkpoint import checkpoint_dir, read_weights

# At initialization this autoencoder's gradient is extremely sensitive to its weights (log
# magnitudes and phases of a near-zero output): a batch of 4 and two batches of 2 differ by float
# rounding (1e-7) in the first gradient, and Adam turns that into visibly different weights within
# two or three steps, with or without DDP. Measured in one process, no DDP: grad-norm 9.85 vs 10.04
# at step 2. So: losses of both steps, and the weights after step 1, must match; and DDP must match
# the same split arithmetic exactly (it does, bitwise, in the grad norms).
STEPS = 2


def _run(cmd: list[str], cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process(tmp_path: Path, dataset: Path) -> None:
    args = ["train", "autoencoder", "--config", "tiny", "--data", str(dataset), "--steps",
            str(STEPS), "--workers", "0", "--no-progress", "--device", "cpu", "--threads", "1",
            "--set", "autoencoder.mask_fraction=0.0",  # no per-rank random masking
            "--set", "autoencoder_training.batch_size=4",
            "--set", "autoencoder_training.log_every=1",
            "--set", "autoencoder_training.checkpoint_every=1",
            "--set", "autoencoder_training.sample_every=0"]
    one, two = tmp_path / "one", tmp_path / "two"
    _run([sys.executable, "-m", "jenbridge", *args, "--run-dir", str(one)], tmp_path)
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
          "-m", "jenbridge", *args, "--run-dir", str(two)], tmp_path)

    def losses(run: Path) -> list[float]:
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return [r["loss"] for r in rows]

    replicas = json.loads((two / "replicas.json").read_text())
    assert len(replicas["checksums"]) == 2 and len(set(replicas["checksums"])) == 1
    l1, l2 = losses(one), losses(two)
    assert len(l1) == len(l2) == STEPS
    assert l1 == pytest.approx(l2, rel=1e-5), (l1, l2)
    a = read_weights(checkpoint_dir(one, 1) / "model.safetensors").state
    b = read_weights(checkpoint_dir(two, 1) / "model.safetensors").state
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
