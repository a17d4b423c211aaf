#!/usr/bin/env bash
# Fails if a pure crate (no I/O, no async runtime) pulls tokio, tonic, hyper, mio or socket2
# into its normal dependency tree. Pure crates are those listed below that exist.
set -euo pipefail
cd "$(dirname "$0")/.."
pure=(zk-proto zk-tree zk-session zk-zab zk-sim)
args=()
names=()
for c in "${pure[@]}"; do
  if [ -f "crates/$c/Cargo.toml" ]; then args+=(-p "$c"); names+=("$c"); fi
done
tree=$(cargo tree -e normal --prefix none "${args[@]}")
bad=$(printf '%s\n' "$tree" | grep -E '^(tokio|tonic|hyper|mio|socket2) ' | sort -u || true)
if [ -n "$bad" ]; then
  echo "pure crates (${names[*]}) depend on I/O crates:" >&2
  echo "$bad" >&2
  exit 1
fi
echo "pure crates (${names[*]}) are free of tokio/tonic/hyper/mio/socket2"
