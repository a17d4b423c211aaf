#!/usr/bin/env bash
# The project's test command (README.md): every unit, integration and doc test of the
# workspace, plus the fuzz corpus replay (part of zk-proto's tests).
set -euo pipefail
cd "$(dirname "$0")/.."
export PROPTEST_CASES="${PROPTEST_CASES:-256}"
cargo test --workspace --locked "$@"

# The ensemble simulator (crates/zk-sim): the committed regression seeds first, then fresh
# seeds until the time box closes; at least 1,000 must run. Long mode, for instance:
#   ZK_SIM_SECONDS=3600 ZK_SIM_START=$RANDOM$RANDOM scripts/test.sh
cargo run --release --locked -q -p zk-sim -- \
  --regressions crates/zk-sim/regressions.txt \
  --start "${ZK_SIM_START:-1}" --seeds "${ZK_SIM_SEEDS:-100000000}" \
  --time-box "${ZK_SIM_SECONDS:-90}" --min-seeds 1000

# The benchmark against Apache ZooKeeper, briefly (every row once, 0.5 s, small sizes,
# 2,000 znodes for memory and restart), so it keeps working; timings are not checked.
BENCH_SMOKE=1 BENCH_ZNODES=2000 bash scripts/bench-vs-zookeeper.sh

# Deploy: image, three-node compose ensemble on the Docker engine (stop the leader,
# partition, heal, down -v), Kubernetes manifests and systemd unit (deploy/test/).
bash deploy/test/run.sh
