#!/usr/bin/env bash
# The whole test suite. Installs the test-only references first (LIBLINEAR's command-line
# tools from Debian, the newest LIBLINEAR from PyPI) and the fonts the letters data set
# reads, then runs every crate's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-refs.sh
# Tests that compare with Python references fail, rather than skip, when one is missing.
export CONVNET_REQUIRE_REFS=1
bash scripts/install-fonts.sh
cargo test --workspace --release
