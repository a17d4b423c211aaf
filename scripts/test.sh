#!/usr/bin/env bash
# The project's test command (README.md): every unit, integration and doc test of the
# workspace, plus the fuzz corpus replay (part of zk-proto's tests).
set -euo pipefail
cd "$(dirname "$0")/.."
export PROPTEST_CASES="${PROPTEST_CASES:-256}"
cargo test --workspace --locked "$@"
