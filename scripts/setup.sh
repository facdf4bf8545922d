#!/usr/bin/env bash
# One-time set-up on a fresh Debian/Ubuntu machine (root or sudo): system audio/MIDI packages,
# CPU PyTorch, and jenbridge with its training, development and Ableton Link extras. Safe to
# run again.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
# zam-plugins: real Linux VST3 plugins (the effect-host tests load one); lua5.4 (luac) and
# puredata-core (pd): the REAPER scripts are syntax-checked and the Pd patch runs headless in tests
APT_PACKAGES=(fluidsynth fluid-soundfont-gm libportaudio2 libsndfile1 liblo-tools jackd2 jack-capture
              zam-plugins lua5.4 puredata-core)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
# A bare `torch` requirement pulls a multi-GB CUDA build: pin the CPU build first unless a torch
# is already installed (GPU machines bring their own).
$PY -c "import torch" 2>/dev/null || $PY -m pip install -q "torch==${JENBRIDGE_TORCH:-2.13.0}"
# onnxruntime and onnxruntime-gpu share one module folder: keep only the one pyproject asks for.
if [ "$(uname -s)" = Linux ] && [ "$(uname -m)" = x86_64 ] && $PY -m pip show -q onnxruntime >/dev/null 2>&1; then
  $PY -m pip uninstall -y -q onnxruntime
fi
$PY -m pip install -q -e ".[train,dev,link]"
# Pretrained audio models for `jenbridge eval` (weights inside the wheels, nothing downloaded at
# run time). --no-deps: aisfx pins old numpy/librosa and basic-pitch pulls TensorFlow; we use
# aisfx's checkpoint on our torch and basic-pitch's ONNX file on ONNX Runtime.
$PY -m pip install -q --no-deps aisfx==0.1.2 basic-pitch==0.4.0
