#!/usr/bin/env bash
# Test-only references: LIBLINEAR 2.3.0 (Debian's liblinear-tools) and LIBLINEAR 2.50
# (PyPI's liblinear-official); for the ONNX and MatConvNet importers, PyPI's onnx (builds
# test models), onnxruntime (the reference outputs), scipy and numpy (MatConvNet-style
# .mat files and their outputs); NVRTC for the CUDA kernels (below). Skips what is already
# installed.
set -euo pipefail
if ! command -v liblinear-train >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq liblinear-tools >/dev/null
fi
if ! python3 -c 'import liblinear.liblinearutil' >/dev/null 2>&1; then
  python3 -m pip install -q liblinear-official
fi
if ! python3 -c 'import onnx, onnxruntime, scipy, numpy' >/dev/null 2>&1; then
  python3 -m pip install -q onnx onnxruntime scipy numpy
fi
# NVRTC (CUDA 13.0's run-time compiler, no GPU needed) in its own venv, for the test that
# compiles the CUDA kernels of the `cuda` feature; test.sh puts its lib folder on
# LD_LIBRARY_PATH. 13.0 to match the GPU machines' driver (CUDA 13.0).
NVRTC_VENV="${CONVNET_NVRTC_VENV:-$HOME/nvrtc-venv}"
if ! ls "$NVRTC_VENV"/lib/python3*/site-packages/nvidia/cu13/lib/libnvrtc.so.13 >/dev/null 2>&1; then
  python3 -m venv "$NVRTC_VENV"
  "$NVRTC_VENV/bin/python" -m pip install -q 'nvidia-cuda-nvrtc==13.0.88'
fi
