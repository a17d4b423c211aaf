#!/usr/bin/env bash
# The cost of linearizable reads (issue 13): a 3-node zkd ensemble on loopback with
# `readPolicy./lin=linearizable` (everything else local); zkbench's getData workload
# (1 KiB, 32 sessions x 16 in flight) against the followers, under /lin and outside it,
# alternating A B A B; prints the medians and the ratio linearizable / local.
#
#   scripts/bench-read-policy.sh                      # 10 s per run, 3 repeats
#   BENCH_SECONDS=3 BENCH_REPEATS=1 scripts/bench-read-policy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
REPEATS=${BENCH_REPEATS:-3}
cargo build --release -q --bin zkd --bin zkbench --bin zkcli
ZKD=target/release/zkd
BENCH=target/release/zkbench
ZKCLI=target/release/zkcli
work=$(mktemp -d /tmp/zkbench-policy.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
srvr_mode() { python3 scripts/four.py "$1" srvr --mode 2>/dev/null || true; }

declare -a client quorum election
for i in 1 2 3; do client[$i]=$(free_port); quorum[$i]=$(free_port); election[$i]=$(free_port); done
for i in 1 2 3; do
  mkdir -p "$work/s$i/data"; echo "$i" > "$work/s$i/data/myid"
  {
    echo "tickTime=2000"; echo "initLimit=10"; echo "syncLimit=5"
    echo "dataDir=$work/s$i/data"; echo "clientPort=${client[$i]}"; echo "clientPortAddress=127.0.0.1"
    echo "maxClientCnxns=0"; echo "admin.enableServer=false"; echo "4lw.commands.whitelist=*"
    echo "forceSync=yes"; echo "readPolicy=local"; echo "readPolicy./lin=linearizable"
    for j in 1 2 3; do echo "server.$j=127.0.0.1:${quorum[$j]}:${election[$j]};${client[$j]}"; done
  } > "$work/s$i/zoo.cfg"
  "$ZKD" --config "$work/s$i/zoo.cfg" > "$work/s$i/out.log" 2>&1 &
  pids+=($!)
done
followers=()
for _ in $(seq 1 300); do
  followers=()
  leaders=0
  for i in 1 2 3; do
    m=$(srvr_mode "${client[$i]}")
    [ "$m" = follower ] && followers+=("127.0.0.1:${client[$i]}")
    [ "$m" = leader ] && leaders=$((leaders + 1))
  done
  [ "$leaders" = 1 ] && [ "${#followers[@]}" = 2 ] && break
  sleep 0.1
done
[ "${#followers[@]}" = 2 ] || { echo "the ensemble did not settle" >&2; exit 1; }
servers=$(IFS=,; echo "${followers[*]}")
"$ZKCLI" -server "$servers" create /lin "" >/dev/null

results="$work/results.jsonl"
: > "$results"
for ((r = 1; r <= REPEATS; r++)); do
  for policy in local linearizable; do
    parent=/; [ "$policy" = linearizable ] && parent=/lin
    line=$("$BENCH" --servers "$servers" --workload get --clients 32 --in-flight 16 --value-size 1024 \
      --duration "$SECONDS_PER_RUN" --parent "$parent" --label "$policy" | tail -1)
    echo "$line" >> "$results"
    echo "run $r  $policy: $(echo "$line" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.0f ops/s p50 %.3f ms p99 %.3f ms errors %d" % (d["ops_per_sec"], d["p50_ms"], d["p99_ms"], d["errors"]))')" >&2
  done
done
python3 - "$results" <<'PY'
import json, statistics, sys
by = {}
for line in open(sys.argv[1]):
    d = json.loads(line)
    by.setdefault(d["label"], []).append(d)
med = lambda ds, k: statistics.median(d[k] for d in ds)
lo, li = by["local"], by["linearizable"]
print(f"getData 1 KiB, 32x16, at the followers of a 3-node zkd ensemble:")
print(f"  local         {med(lo, 'ops_per_sec'):>9.0f} ops/s  p50 {med(lo, 'p50_ms'):.3f} ms  p99 {med(lo, 'p99_ms'):.3f} ms")
print(f"  linearizable  {med(li, 'ops_per_sec'):>9.0f} ops/s  p50 {med(li, 'p50_ms'):.3f} ms  p99 {med(li, 'p99_ms'):.3f} ms")
print(f"  ratio linearizable / local: {med(li, 'ops_per_sec') / med(lo, 'ops_per_sec'):.2f}x (target >= 0.7x)")
PY
