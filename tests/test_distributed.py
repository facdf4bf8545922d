"""Two processes with torchrun (gloo, CPU) == one process on the same global batch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from jenbridge.training.checkpoint import checkpoint_dir, read_weights

# At initialization this autoencoder's gradient is very sensitive to its weights (log
# magnitudes and phases of a near-zero output), and Adam's first steps move every weight by
# about lr * sign(gradient): a gradient entry within float rounding of zero (a batch of 4 vs two
# batches of 2 differ by ~1e-7) can flip its sign and move that weight by up to ~lr the other
# way. Measured in one process, no DDP: grad-norm 9.85 vs 10.04 by step 3. So we check the
# losses and gradient norms of two steps tightly, and that after step 1 all but a handful of
# weights agree to 1e-6 and none differ by more than 2 * lr.
STEPS = 2


# gloo on CPU sometimes aborts a rank while the group is torn down after the work is done
# ("terminate called without an active exception", SIGABRT; ~1 run in 20 on 2 busy cores,
# after the last checkpoint and replicas.json are written). That one signature gets a second
# run; anything else fails at once.
GLOO_TEARDOWN_ABORT = "terminate called without an active exception"


def _run(cmd: list[str], cwd: Path, run_dir: Path | None = None) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for attempt in (1, 2):
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=300)
        log = done.stdout[-3000:] + done.stderr[-3000:]
        if done.returncode == 0:
            return
        if attempt == 2 or GLOO_TEARDOWN_ABORT not in done.stderr or run_dir is None:
            raise AssertionError(log)
        shutil.rmtree(run_dir)  # the retry starts the run afresh


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process(tmp_path: Path, dataset: Path) -> None:
    args = ["train", "autoencoder", "--config", "tiny", "--data", str(dataset), "--steps",
            str(STEPS), "--workers", "0", "--no-progress", "--device", "cpu", "--threads", "1",
            "--set", "autoencoder.mask_fraction=0.0",  # no per-rank random masking
            # fp32: bf16 rounds a batch of 4 and two batches of 2 differently (measured: loss
            # 3.0912 vs 3.0904 by step 2), which is not what this test is about
            "--set", "autoencoder_training.precision=fp32",
            "--set", "autoencoder_training.batch_size=4",
            "--set", "autoencoder_training.log_every=1",
            "--set", "autoencoder_training.checkpoint_every=1",
            "--set", "autoencoder_training.sample_every=0"]
    one, two = tmp_path / "one", tmp_path / "two"
    _run([sys.executable, "-m", "jenbridge", *args, "--run-dir", str(one)], tmp_path)
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
          "-m", "jenbridge", *args, "--run-dir", str(two)], tmp_path, two)

    def logged(run: Path, key: str) -> list[float]:
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return [r[key] for r in rows]

    replicas = json.loads((two / "replicas.json").read_text())
    assert len(replicas["checksums"]) == 2 and len(set(replicas["checksums"])) == 1
    l1, l2 = logged(one, "loss"), logged(two, "loss")
    assert len(l1) == len(l2) == STEPS
    assert l1 == pytest.approx(l2, rel=1e-6), (l1, l2)
    g1, g2 = logged(one, "grad_norm"), logged(two, "grad_norm")
    assert g1 == pytest.approx(g2, rel=1e-4), (g1, g2)
    w1 = read_weights(checkpoint_dir(one, 1) / "model.safetensors")
    a, b = w1.state, read_weights(checkpoint_dir(two, 1) / "model.safetensors").state
    diff = torch.cat([(a[k] - b[k]).abs().flatten() for k in a])
    assert (diff > 1e-6).float().mean() < 0.005, (diff > 1e-6).float().mean()
    assert diff.max() <= 2 * w1.config.autoencoder_training.lr
