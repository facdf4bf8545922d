#!/usr/bin/env bash
# Train the shipped default model (config `small`) end to end on this machine: the same as
# `jenbridge train recipe default` (jenbridge/training/recipe.py). Every stage resumes where it
# stopped, so run it again (in every session) until the targets are reached. State lives
# outside the repository: $JENBRIDGE_HOME (default ~/.cache/jenbridge).
#   MINUTES    built-in dataset size in minutes of audio     (default 300)
#   AE_STEPS   autoencoder steps to reach                    (default 3500)
#   DEC_STEPS  step its decoder alone is fine-tuned to       (default 8500)
#   DIFF_STEPS diffusion steps to reach                      (default: the config's)
#   STAGES     stages to run, comma-separated                (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
args=(--minutes "${MINUTES:-300}" --ae-steps "${AE_STEPS:-3500}" --decoder-steps "${DEC_STEPS:-8500}" --threads "${THREADS:-$(nproc)}")
[ -n "${DIFF_STEPS:-}" ] && args+=(--steps "$DIFF_STEPS")
[ -n "${STAGES:-}" ] && args+=(--stages "$STAGES")
exec python -m jenbridge train recipe default "${args[@]}"
