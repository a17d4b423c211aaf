#!/usr/bin/env bash
# The deploy checks (part of scripts/test.sh): the Kubernetes manifests and the systemd
# unit checked offline, then the container image built from this checkout and the
# three-node compose ensemble run on the Docker engine (deploy/test/compose_test.py).
# Under CI a missing tool fails the run; elsewhere it skips that part, saying so.
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-target}"

missing() {
  if [ "${CI:-}" = "true" ]; then
    echo "deploy checks: $1 is missing (.ci/run installs it)" >&2
    exit 1
  fi
  echo "deploy checks: SKIPPED $2: $1 is missing" >&2
}

cargo build --release --locked -q -p zkd -p zkcli

if command -v kubernetes-validate >/dev/null && command -v systemd-analyze >/dev/null; then
  python3 deploy/test/check_manifests.py --zkd "$target/release/zkd"
else
  missing "kubernetes-validate (pip) or systemd-analyze" "the manifest checks"
fi

if docker info >/dev/null 2>&1 \
   && { command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1; }; then
  python3 deploy/test/compose_test.py --zkcli "$target/release/zkcli"
else
  missing "a reachable Docker engine with docker-compose" "the compose ensemble test"
fi
