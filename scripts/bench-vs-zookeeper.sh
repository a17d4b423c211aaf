#!/usr/bin/env bash
# zkd against Apache ZooKeeper 3.8 (Debian) on this machine, in the same run: the same
# zkbench workloads against both servers, alternating A B A B, repeated; prints the median
# of each row for both and the ratio zkd / ZooKeeper. Both servers fsync every write, use
# tickTime=2000 and keep their data in the same temporary directory tree.
#
#   scripts/bench-vs-zookeeper.sh                # 10 s per run, 3 repeats
#   BENCH_SECONDS=3 BENCH_REPEATS=1 scripts/bench-vs-zookeeper.sh   # quick look
#   BENCH_ZNODES=1000000 scripts/bench-vs-zookeeper.sh              # + memory and restart
#
# Needs: apt-get install zookeeper (zkServer.sh), a release build (done here).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
REPEATS=${BENCH_REPEATS:-3}
BIG=${BENCH_ZNODES:-0}
ZK_SERVER=/usr/share/zookeeper/bin/zkServer.sh
[ -x "$ZK_SERVER" ] || { echo "needs Apache ZooKeeper: apt-get install zookeeper" >&2; exit 1; }

cargo build --release -q --bin zkd --bin zkbench --bin zkcli
ZKD=target/release/zkd
BENCH=target/release/zkbench
ZKCLI=target/release/zkcli
work=$(mktemp -d /tmp/zkbench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ruok() { python3 - "$1" <<'PY' 2>/dev/null || true
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
s.sendall(b"ruok")
print(s.recv(16).decode())
PY
}
# Serving means answering a read with the data (ruok may answer before the data is loaded).
wait_serving() { for _ in $(seq 1 6000); do "$ZKCLI" -server "127.0.0.1:$1" ls / 2>/dev/null | grep -q zkbench && return 0; sleep 0.05; done; echo "server on $1 did not serve" >&2; return 1; }
wait_ruok() { for _ in $(seq 1 600); do [ "$(ruok "$1")" = imok ] && return 0; sleep 0.1; done; echo "server on $1 did not start" >&2; return 1; }

config() { # name port
  mkdir -p "$work/$1/data"
  cat > "$work/$1/zoo.cfg" <<EOF
tickTime=2000
dataDir=$work/$1/data
clientPort=$2
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,mntr
forceSync=yes
EOF
}

start_zk() {
  ZOO_LOG_DIR="$work/zk" SERVER_JVMFLAGS="-Xmx2g" "$ZK_SERVER" start-foreground "$work/zk/zoo.cfg" >"$work/zk/out.log" 2>&1 &
  ZK_PID=$!; pids+=("$ZK_PID"); wait_ruok "$ZK_PORT"
  # zkServer.sh execs java: the child is the JVM.
}
start_zkd() {
  "$ZKD" --config "$work/zkd/zoo.cfg" >"$work/zkd/out.log" 2>&1 &
  ZKD_PID=$!; pids+=("$ZKD_PID"); wait_ruok "$ZKD_PORT"
}

ZK_PORT=$(free_port); ZKD_PORT=$(free_port)
config zk "$ZK_PORT"; config zkd "$ZKD_PORT"
start_zk; start_zkd

# name | zkbench arguments
matrix=(
  "get 1KiB 32x16|--workload get --clients 32 --in-flight 16 --value-size 1024"
  "set 1KiB 32x16|--workload set --clients 32 --in-flight 16 --value-size 1024"
  "get 1x1|--workload get --clients 1 --in-flight 1 --value-size 1024"
  "set 1x1|--workload set --clients 1 --in-flight 1 --value-size 1024"
  "mixed 90% read 32x16|--workload mixed --clients 32 --in-flight 16 --read-percent 90"
  "create 32x4|--workload create --clients 32 --in-flight 4 --value-size 100"
  "ephemeral 16x1|--workload ephemeral --clients 16 --in-flight 1"
  "connect 8x1|--workload connect --clients 8 --in-flight 1"
  "watch 1000 sessions|--workload watch --clients 1000"
)

results="$work/results.jsonl"
: > "$results"
[ "${BENCH_ONLY_BIG:-0}" = 1 ] && REPEATS=0
for ((r = 1; r <= REPEATS; r++)); do
  for row in "${matrix[@]}"; do
    name=${row%%|*}; args=${row#*|}
    for who in ZooKeeper zkd; do
      port=$ZK_PORT; [ "$who" = zkd ] && port=$ZKD_PORT
      # shellcheck disable=SC2086
      line=$("$BENCH" --servers "127.0.0.1:$port" $args --duration "$SECONDS_PER_RUN" --label "$who" | tail -1)
      echo "$line" | python3 -c 'import json,sys; d=json.load(sys.stdin); d["row"]=sys.argv[1]; print(json.dumps(d))' "$name" >> "$results"
      echo "run $r  $who  $name: $(echo "$line" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.0f ops/s p50 %.3f ms p99 %.3f ms" % (d["ops_per_sec"], d["p50_ms"], d["p99_ms"]))')" >&2
    done
  done
done

cpu_ms() { awk '{print ($14 + $15) * 1000 / 100}' "/proc/$1/stat"; }
rss_mb() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }

big_rows=""
if [ "$BIG" -gt 0 ]; then
  for who in ZooKeeper zkd; do
    port=$ZK_PORT; pid=$ZK_PID; [ "$who" = zkd ] && { port=$ZKD_PORT; pid=$ZKD_PID; }
    "$BENCH" --servers "127.0.0.1:$port" --workload create --clients 16 --in-flight 16 --value-size 100 --ops "$BIG" --keep --label "$who" >/dev/null
    rss=$(rss_mb "$pid")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    t0=$(date +%s.%N)
    if [ "$who" = zkd ]; then start_zkd; pid=$ZKD_PID; else start_zk; pid=$ZK_PID; fi
    wait_serving "$port"
    t1=$(date +%s.%N)
    big_rows+="$who $rss $(python3 -c "print($t1 - $t0)")\n"
  done
fi

python3 - "$results" "$BIG" "$(printf "%b" "$big_rows")" <<'EOF'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    d = json.loads(line)
    rows.setdefault(d["row"], {}).setdefault(d["label"], []).append(d)
def med(ds, k):
    return statistics.median(d[k] for d in ds)
print()
print(f"{'workload':<24} {'ZooKeeper ops/s':>15} {'zkd ops/s':>12} {'ratio':>7}   {'ZK p50 ms':>9} {'zkd p50':>9} {'ZK p99 ms':>9} {'zkd p99':>9} {'p99 ratio':>9}")
for name, by in rows.items():
    zk, us = by.get("ZooKeeper", []), by.get("zkd", [])
    if not zk or not us:
        continue
    zt, ut = med(zk, "ops_per_sec"), med(us, "ops_per_sec")
    z50, u50, z99, u99 = med(zk, "p50_ms"), med(us, "p50_ms"), med(zk, "p99_ms"), med(us, "p99_ms")
    print(f"{name:<24} {zt:>15.0f} {ut:>12.0f} {ut / zt if zt else 0:>6.2f}x   {z50:>9.3f} {u50:>9.3f} {z99:>9.3f} {u99:>9.3f} {u99 / z99 if z99 else 0:>8.2f}x")
if sys.argv[2] != "0" and sys.argv[3].strip():
    big = {}
    for line in sys.argv[3].strip().splitlines():
        who, rss, t = line.split()
        big[who] = (float(rss), float(t))
    if "ZooKeeper" in big and "zkd" in big:
        (zr, zt), (ur, ut) = big["ZooKeeper"], big["zkd"]
        print(f"\n{sys.argv[2]} znodes of 100 B: resident {zr:.0f} MB vs {ur:.0f} MB ({ur / zr:.2f}x); restart to serving {zt:.2f} s vs {ut:.2f} s ({ut / zt:.2f}x)")
EOF
