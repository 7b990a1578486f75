#!/usr/bin/env bash
# Test-only references: LIBLINEAR 2.3.0 (Debian's liblinear-tools) and LIBLINEAR 2.50
# (PyPI's liblinear-official); for the ONNX and MatConvNet importers, PyPI's onnx (builds
# test models), onnxruntime (the reference outputs), scipy and numpy (MatConvNet-style
# .mat files and their outputs). Skips what is already installed.
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
