#!/usr/bin/env bash
# The whole test suite. Installs the test-only references first (LIBLINEAR's command-line
# tools from Debian, the newest LIBLINEAR from PyPI), the fonts the letters data set
# reads and Open MPI, then runs every crate's tests in one build with the `mpi` and
# `cuda` features (the data-parallel tests run under `mpirun -np 2` and `-np 3`; the CUDA
# kernels compile with the NVRTC installed by install-test-refs.sh and the GPU tests print
# "skipped: no GPU"), and checks that the default build, which needs neither, still
# compiles and says how to get the GPU path.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-refs.sh
# Tests that compare with Python references fail, rather than skip, when one is missing.
export CONVNET_REQUIRE_REFS=1
bash scripts/install-fonts.sh
bash scripts/install-mpi.sh
NVRTC_LIB=$(echo "${CONVNET_NVRTC_VENV:-$HOME/nvrtc-venv}"/lib/python3*/site-packages/nvidia/cu13/lib)
export LD_LIBRARY_PATH="$NVRTC_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
cargo test --workspace --release --features convnet-cli/mpi,convnet-cli/cuda
cargo clippy --release -p convnet --all-targets --features cuda -- -D warnings
cargo build --release -p convnet-cli
refused=$(./target/release/convnet train --device cuda 2>&1 || true)
grep -q -- '--features cuda' <<<"$refused" || { echo "default build: $refused" >&2; exit 1; }
