#!/usr/bin/env bash
# The whole test suite. Installs the test-only references first (LIBLINEAR's command-line
# tools from Debian, the newest LIBLINEAR from PyPI), the fonts the letters data set
# reads and Open MPI, then runs every crate's tests in one build with the `mpi` feature
# (the data-parallel tests run under `mpirun -np 2` and `-np 3`), and checks that the
# default build, which needs no MPI, still compiles.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-refs.sh
# Tests that compare with Python references fail, rather than skip, when one is missing.
export CONVNET_REQUIRE_REFS=1
bash scripts/install-fonts.sh
bash scripts/install-mpi.sh
cargo test --workspace --release --features convnet-cli/mpi
cargo build --release -p convnet-cli
