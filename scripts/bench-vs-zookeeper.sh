#!/usr/bin/env bash
# zkd against Apache ZooKeeper 3.8 (Debian) on this machine, in the same run: the same
# zkbench workloads against both, standalone and as 3-node loopback ensembles, alternating
# A B then B A, repeated; prints the median of each row for both and the ratio zkd / ZooKeeper,
# with each server's CPU time per operation (utime + stime of the server processes over
# the run, divided by the operations zkbench verified). Both fsync every write, use
# tickTime=2000 and keep their data in the same temporary directory tree.
#
#   scripts/bench-vs-zookeeper.sh                # 10 s per run, 3 repeats, both modes
#   BENCH_SECONDS=3 BENCH_REPEATS=1 scripts/bench-vs-zookeeper.sh   # quick look
#   BENCH_MODES=standalone scripts/bench-vs-zookeeper.sh            # or: ensemble
#   BENCH_ROWS='get 1KiB 32x16,set 1x1' scripts/bench-vs-zookeeper.sh   # some rows only
#   BENCH_ZNODES=1000000 scripts/bench-vs-zookeeper.sh              # + memory and restart
#   BENCH_WARMUP=5 (seconds of get and set per system before measuring, not recorded)
#   BENCH_SETTLE=5 (seconds after the big load before resident memory is read again)
#   BENCH_SMOKE=1 scripts/bench-vs-zookeeper.sh  # CI: every row once, briefly, small sizes
#
# Needs: apt-get install zookeeper (zkServer.sh), a release build (done here).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
REPEATS=${BENCH_REPEATS:-3}
BIG=${BENCH_ZNODES:-0}
MODES=${BENCH_MODES:-standalone ensemble}
WATCHERS=${BENCH_WATCHERS:-10000}
SMOKE=${BENCH_SMOKE:-0}
WARMUP=${BENCH_WARMUP:-5}
SETTLE=${BENCH_SETTLE:-5}
if [ "$SMOKE" = 1 ]; then
  SECONDS_PER_RUN=0.5; REPEATS=1; WATCHERS=50; WARMUP=0.2; SETTLE=0.5
  [ "$BIG" -gt 0 ] && BIG=2000
fi
ZK_SERVER=/usr/share/zookeeper/bin/zkServer.sh
[ -x "$ZK_SERVER" ] || { echo "needs Apache ZooKeeper: apt-get install zookeeper" >&2; exit 1; }
# 10,000 watcher sessions need as many descriptors in zkbench and in each server.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

cargo build --release -q --bin zkd --bin zkbench --bin zkcli
ZKD=target/release/zkd
BENCH=target/release/zkbench
ZKCLI=target/release/zkcli
work=$(mktemp -d /tmp/zkbench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.02; done; done
  rm -rf "$work"
}
trap cleanup EXIT

# A port no other server of this run was given (bind(0) may hand out a port again once
# it is closed, and a ZooKeeper follower leaves its quorum port unbound).
GIVEN=" "
# next_port VAR: sets VAR (not a $(...) subshell, which would forget GIVEN).
next_port() {
  local p
  while :; do
    p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    case "$GIVEN" in *" $p "*) continue ;; esac
    GIVEN+="$p "; printf -v "$1" '%s' "$p"; return
  done
}
four() { python3 scripts/four.py "$1" "$2" 2>/dev/null || true; }
# Serving means answering a read with the data (ruok may answer before the data is loaded).
wait_serving() { for _ in $(seq 1 6000); do "$ZKCLI" -server "127.0.0.1:$1" ls / 2>/dev/null | grep -q zkbench && return 0; sleep 0.05; done; echo "server on $1 did not serve" >&2; return 1; }
wait_ruok() { for _ in $(seq 1 600); do [ "$(four "$1" ruok)" = imok ] && return 0; sleep 0.1; done; echo "server on $1 did not start" >&2; return 1; }
# A member serves once it is leader, follower or standalone (srvr says which).
# wait_mode PORT DIR; on failure the server's log tail says why.
wait_mode() { for _ in $(seq 1 600); do four "$1" srvr | grep -qE '^Mode: (leader|follower|standalone)' && return 0; sleep 0.1; done; echo "server on $1 did not join; $2/out.log ends:" >&2; tail -30 "$2/out.log" >&2; return 1; }

# config DIR PORT [SERVER_LINES]
config() {
  mkdir -p "$1/data"
  {
    echo "tickTime=2000"; echo "initLimit=10"; echo "syncLimit=5"
    echo "dataDir=$1/data"; echo "clientPort=$2"; echo "clientPortAddress=127.0.0.1"
    echo "maxClientCnxns=0"; echo "admin.enableServer=false"
    echo "4lw.commands.whitelist=ruok,srvr,mntr"; echo "forceSync=yes"
    if [ -n "${3:-}" ]; then printf "%b" "$3"; fi
  } > "$1/zoo.cfg"
}

# start WHO DIR: prints the server's pid (zkServer.sh execs java: the child is the JVM).
start() {
  if [ "$1" = zkd ]; then
    "$ZKD" --config "$2/zoo.cfg" >"$2/out.log" 2>&1 &
  else
    ZOO_LOG_DIR="$2" SERVER_JVMFLAGS="-Xmx2g" "$ZK_SERVER" start-foreground "$2/zoo.cfg" >"$2/out.log" 2>&1 &
  fi
  echo $!
}

# Per system: its connect string, client ports and server pids.
declare -A CONNECT PORTS PIDS DIRS
setup() { # MODE WHO
  local mode=$1 who=$2 key="$1/$2"
  if [ "$mode" = standalone ]; then
    local port; next_port port
    config "$work/$key" "$port"
    PORTS[$key]=$port; DIRS[$key]="$work/$key"
    PIDS[$key]=$(start "$who" "$work/$key"); pids+=("${PIDS[$key]}")
    wait_ruok "$port"
    CONNECT[$key]="127.0.0.1:$port"
  else
    local lines="" c q e i
    declare -a cp
    for i in 1 2 3; do
      next_port c; next_port q; next_port e; cp[$i]=$c
      lines+="server.$i=127.0.0.1:$q:$e\n"
    done
    PORTS[$key]=""; PIDS[$key]=""; DIRS[$key]=""; CONNECT[$key]=""
    for i in 1 2 3; do
      config "$work/$key/s$i" "${cp[$i]}" "$lines"
      echo "$i" > "$work/$key/s$i/data/myid"
      local pid; pid=$(start "$who" "$work/$key/s$i"); pids+=("$pid")
      PIDS[$key]+="$pid "; PORTS[$key]+="${cp[$i]} "; DIRS[$key]+="$work/$key/s$i "
      CONNECT[$key]+="127.0.0.1:${cp[$i]},"
    done
    CONNECT[$key]=${CONNECT[$key]%,}
    local t0=$SECONDS
    for i in 1 2 3; do wait_mode "${cp[$i]}" "$work/$key/s$i"; done
    echo "$who ensemble serving after $((SECONDS - t0)) s" >&2
  fi
}

# CPU time of the server processes in ms (clock ticks of 10 ms).
cpu_ms() { local t=0 p; for p in $1; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat") * 10)); done; echo $t; }
# Servers start in a subshell ($(start ...)), so they are not this shell's children: poll.
stop_pid() { kill "$1" 2>/dev/null || true; while kill -0 "$1" 2>/dev/null; do sleep 0.02; done; }
rss_mb() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }

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
  "watch $WATCHERS watchers|--workload watch --clients $WATCHERS"
)
if [ -n "${BENCH_ROWS:-}" ]; then
  IFS=, read -ra wanted <<< "$BENCH_ROWS"
  kept=()
  for row in "${matrix[@]}"; do
    for w in "${wanted[@]}"; do [ "${row%%|*}" = "$w" ] && kept+=("$row"); done
  done
  matrix=("${kept[@]}")
fi
[ "$SMOKE" = 1 ] && smoke_args="--znodes 50" || smoke_args=""

results="$work/results.jsonl"
: > "$results"
[ "${BENCH_ONLY_BIG:-0}" = 1 ] && REPEATS=0
for mode in $MODES; do
  [ "$REPEATS" -gt 0 ] || break
  for who in ZooKeeper zkd; do setup "$mode" "$who"; done
  # Warm up: the JVM compiles its hot paths in the first seconds (not recorded).
  for who in ZooKeeper zkd; do
    for w in get set; do
      "$BENCH" --servers "${CONNECT[$mode/$who]}" --workload $w --clients 32 --in-flight 16 $smoke_args \
        --duration "$WARMUP" --label warmup >/dev/null
    done
  done
  for ((r = 1; r <= REPEATS; r++)); do
    for row in "${matrix[@]}"; do
      name=${row%%|*}; args=${row#*|}
      # Who goes first alternates between repeats (A B, then B A): a run's leftovers
      # (a JVM's collections and compilation, pages being written back) fall on each
      # system's runs alike.
      order="ZooKeeper zkd"; [ $((r % 2)) = 0 ] && order="zkd ZooKeeper"
      for who in $order; do
        key="$mode/$who"
        before=$(cpu_ms "${PIDS[$key]}")
        # shellcheck disable=SC2086
        line=$("$BENCH" --servers "${CONNECT[$key]}" $args $smoke_args --duration "$SECONDS_PER_RUN" --label "$who" | tail -1)
        after=$(cpu_ms "${PIDS[$key]}")
        echo "$line" | python3 -c 'import json,sys; d=json.load(sys.stdin); d["row"]=sys.argv[1]; d["mode"]=sys.argv[2]; d["cpu_ms"]=int(sys.argv[3]); print(json.dumps(d))' "$name" "$mode" "$((after - before))" >> "$results"
        echo "$mode run $r  $who  $name: $(echo "$line" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.0f ops/s p50 %.3f ms p99 %.3f ms errors %d" % (d["ops_per_sec"], d["p50_ms"], d["p99_ms"], d["errors"]))') cpu $((after - before)) ms" >&2
      done
    done
  done
  # The ensembles of this mode stop before the next mode starts.
  for who in ZooKeeper zkd; do for p in ${PIDS[$mode/$who]}; do stop_pid "$p"; done; done
done

big_rows=""
if [ "$BIG" -gt 0 ]; then
  for who in ZooKeeper zkd; do
    key="big/$who"
    next_port port; config "$work/$key" "$port"
    pid=$(start "$who" "$work/$key"); pids+=("$pid"); wait_ruok "$port"
    "$BENCH" --servers "127.0.0.1:$port" --workload create --clients 16 --in-flight 16 --value-size 100 --ops "$BIG" --keep --label "$who" >/dev/null
    rss=$(rss_mb "$pid")
    # And once the load is over: idle, holding the data (a JVM keeps its heap; zkd's
    # allocator gives freed pages back within seconds).
    sleep "$SETTLE"
    settled=$(rss_mb "$pid")
    stop_pid "$pid"
    # Restart from a quiet disk: the load's last snapshots and logs are written back
    # first, so neither server's restart is timed against the kernel flushing the
    # previous phase's dirty pages (it made the same restart vary 0.9 to 1.6 s).
    sync
    t0=$(date +%s.%N)
    pid=$(start "$who" "$work/$key"); pids+=("$pid")
    wait_serving "$port"
    t1=$(date +%s.%N)
    big_rows+="$who $rss $settled $(python3 -c "print($t1 - $t0)")\n"
    stop_pid "$pid"
  done
fi

python3 - "$results" "$BIG" "$(printf "%b" "$big_rows")" "$SETTLE" <<'EOF'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    d = json.loads(line)
    rows.setdefault((d["mode"], d["row"]), {}).setdefault(d["label"], []).append(d)
def med(ds, k):
    return statistics.median(d[k] for d in ds)
def cpu_us(ds):
    return statistics.median(d["cpu_ms"] * 1000 / d["ops"] if d["ops"] else 0 for d in ds)
def ratio(a, b):
    return a / b if b else 0
print()
print(f"{'mode':<10} {'workload':<22} {'ZK ops/s':>9} {'zkd ops/s':>9} {'ratio':>6} | {'ZK p50':>7} {'zkd p50':>7} {'ratio':>6} | {'ZK p99':>7} {'zkd p99':>7} {'ratio':>6} | {'ZK cpu':>7} {'zkd cpu':>7} {'ratio':>6}")
print(f"{'':<10} {'':<22} {'':>9} {'':>9} {'':>6} | {'ms':>7} {'ms':>7} {'':>6} | {'ms':>7} {'ms':>7} {'':>6} | {'us/op':>7} {'us/op':>7} {'':>6}")
for (mode, name), by in rows.items():
    zk, us = by.get("ZooKeeper", []), by.get("zkd", [])
    if not zk or not us:
        continue
    zt, ut = med(zk, "ops_per_sec"), med(us, "ops_per_sec")
    z50, u50, z99, u99 = med(zk, "p50_ms"), med(us, "p50_ms"), med(zk, "p99_ms"), med(us, "p99_ms")
    zc, uc = cpu_us(zk), cpu_us(us)
    print(f"{mode:<10} {name:<22} {zt:>9.0f} {ut:>9.0f} {ratio(ut, zt):>5.2f}x | {z50:>7.3f} {u50:>7.3f} {ratio(u50, z50):>5.2f}x | {z99:>7.3f} {u99:>7.3f} {ratio(u99, z99):>5.2f}x | {zc:>7.1f} {uc:>7.1f} {ratio(uc, zc):>5.2f}x")
    errors = sum(d["errors"] for d in zk + us)
    if errors:
        print(f"{'':<10} {name}: {errors} errors")
if sys.argv[2] != "0" and sys.argv[3].strip():
    big = {}
    for line in sys.argv[3].strip().splitlines():
        who, rss, settled, t = line.split()
        big[who] = (float(rss), float(settled), float(t))
    if "ZooKeeper" in big and "zkd" in big:
        (zr, zs, zt), (ur, us, ut) = big["ZooKeeper"], big["zkd"]
        print(f"\n{sys.argv[2]} znodes of 100 B: resident right after the creates {zr:.0f} MB vs {ur:.0f} MB ({ur / zr:.2f}x), "
              f"{sys.argv[4]} s later {zs:.0f} MB vs {us:.0f} MB ({us / zs:.2f}x); restart to serving {zt:.2f} s vs {ut:.2f} s ({ut / zt:.2f}x)")
EOF
