#!/usr/bin/env bash
# Train the shipped default model (config `small`) end to end on this machine. Every stage
# resumes where it stopped, so run it again (in every session) until the targets are reached.
# State lives outside the repository: $JENBRIDGE_HOME (default ~/.cache/jenbridge).
#   MINUTES    built-in dataset size in minutes of audio     (default 600)
#   AE_STEPS   autoencoder steps to reach                    (default: the config's)
#   DIFF_STEPS diffusion steps to reach                      (default: the config's)
#   STAGES     which stages to run, in order                  (default: all)
set -euo pipefail
HOME_DIR=${JENBRIDGE_HOME:-$HOME/.cache/jenbridge}
DATA=$HOME_DIR/data/builtin
RUNS=$HOME_DIR/runs
THREADS=${THREADS:-$(nproc)}
STAGES=${STAGES:-"data autoencoder stats latents diffusion export"}
mkdir -p "$RUNS"
jb() { python -m jenbridge "$@"; }
ae_steps=(); [ -n "${AE_STEPS:-}" ] && ae_steps=(--steps "$AE_STEPS")
# On a fresh machine, continue from the weights committed at the last milestone (EMA, fp16).
REPO=$(cd "$(dirname "$0")/.." && pwd)
SEED_AE=$REPO/weights/small/autoencoder.ema.fp16.safetensors
[ -f "$SEED_AE" ] && ae_steps+=(--init-from "$SEED_AE")
diff_steps=(); [ -n "${DIFF_STEPS:-}" ] && diff_steps=(--steps "$DIFF_STEPS")

for stage in $STAGES; do
  echo "== $stage  $(date -u +%FT%TZ)"
  case $stage in
    data) jb data builtin --out "$DATA" --minutes "${MINUTES:-600}" --workers "$THREADS" --quiet ;;
    autoencoder) jb train autoencoder --config small --data "$DATA" --run-dir "$RUNS/ae" \
        --threads "$THREADS" --workers 1 --no-progress "${ae_steps[@]}" ;;
    stats) jb train stats --run-dir "$RUNS/ae" --data "$DATA" --seconds 1800 --variance-kept 0.99 --threads "$THREADS" ;;
    latents) jb train cache-latents --autoencoder "$RUNS/ae/autoencoder.safetensors" \
        --data "$DATA" --out "$RUNS/latents" --threads "$THREADS" ;;
    diffusion) jb train diffusion --config small --autoencoder "$RUNS/ae/autoencoder.safetensors" \
        --latents "$RUNS/latents" --run-dir "$RUNS/diffusion" --threads "$THREADS" --workers 1 \
        --no-progress "${diff_steps[@]}" ;;
    export) jb train export-weights --run-dir "$RUNS/ae" --out "$REPO/weights/small/autoencoder.ema.fp16.safetensors"
            jb train export-weights --run-dir "$RUNS/diffusion" --out "$REPO/weights/small/diffusion.ema.fp16.safetensors" ;;
    *) echo "unknown stage $stage" >&2; exit 2 ;;
  esac
done
