#!/usr/bin/env bash
# Heap bytes per znode of Apache ZooKeeper (Debian's 3.8 package), for comparison with
# `cargo run --release -p zk-tree --example memory`.
#
# Starts a standalone ZooKeeper on a free loopback port with a temp dataDir, measures the
# used heap after two full GCs on the empty server, loads PARENTS x CHILDREN znodes shaped
# like the zk-tree bench (/bench/pNNNN/<20-byte name>, 100-byte data, OPEN_ACL_UNSAFE)
# through scripts/zk_load.py (one raw jute session, WINDOW creates in flight), measures
# again after two full GCs, and prints (after - before) / znodes created. The server is
# always stopped at the end.
#
# Usage: scripts/measure-zk-heap.sh            (1000 x 1000; takes a few minutes)
#        PARENTS=100 CHILDREN=100 scripts/measure-zk-heap.sh
# Env: PARENTS, CHILDREN, DATA_LEN, WINDOW, XMX (default 4g), KEEP_TMP=1 to keep the temp dir,
#      ZK_HOME (default /usr/share/zookeeper).
set -euo pipefail

PARENTS=${PARENTS:-1000}
CHILDREN=${CHILDREN:-1000}
DATA_LEN=${DATA_LEN:-100}
WINDOW=${WINDOW:-500}
XMX=${XMX:-4g}
ZK_HOME=${ZK_HOME:-/usr/share/zookeeper}
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOAD="$HERE/zk_load.py"

for tool in java jcmd python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install openjdk-17-jdk-headless python3)" >&2; exit 1; }
done
[ -x "$ZK_HOME/bin/zkServer.sh" ] || { echo "missing $ZK_HOME/bin/zkServer.sh (apt-get install zookeeper)" >&2; exit 1; }

TMP="$(mktemp -d /tmp/zk-heap.XXXXXX)"
PID=""
cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill "$PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    if [ "${KEEP_TMP:-0}" = 1 ]; then
        echo "kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
mkdir -p "$TMP/data" "$TMP/log"
cat > "$TMP/zoo.cfg" <<EOF
tickTime=2000
dataDir=$TMP/data
clientPort=$PORT
clientPortAddress=127.0.0.1
admin.enableServer=false
# No fsync per txn: the load is about memory, not durability.
forceSync=no
EOF

echo "starting ZooKeeper on 127.0.0.1:$PORT (heap -Xmx$XMX), logs in $TMP/server.out" >&2
# start-foreground execs java, so $! is the JVM's pid.
JMXDISABLE=true ZOO_LOG_DIR="$TMP/log" SERVER_JVMFLAGS="-Xmx$XMX" \
    "$ZK_HOME/bin/zkServer.sh" start-foreground "$TMP/zoo.cfg" > "$TMP/server.out" 2>&1 &
PID=$!

up=0
for _ in $(seq 120); do
    kill -0 "$PID" 2>/dev/null || { echo "ZooKeeper exited:" >&2; tail -30 "$TMP/server.out" >&2; exit 1; }
    if python3 "$LOAD" --port "$PORT" --ping 2>/dev/null; then up=1; break; fi
    sleep 0.5
done
[ "$up" = 1 ] || { echo "ZooKeeper did not come up:" >&2; tail -30 "$TMP/server.out" >&2; exit 1; }
echo "ZooKeeper $(java -cp "/usr/share/java/zookeeper.jar" org.apache.zookeeper.version.VersionInfoMain 2>/dev/null || echo '(version unknown)') up, pid $PID" >&2

# Used heap in bytes after two full GCs (GC.run is System.gc(): a full collection in G1).
heap_used() {
    jcmd "$PID" GC.run >/dev/null
    jcmd "$PID" GC.run >/dev/null
    sleep 1
    jcmd "$PID" GC.heap_info > "$TMP/heap_info.txt"
    python3 - "$TMP/heap_info.txt" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
for line in text.splitlines():
    if "heap" in line and "total" in line:
        m = re.search(r"used (\d+)K", line)
        if m:
            print(int(m.group(1)) * 1024)
            sys.exit(0)
sys.exit("no heap line in GC.heap_info:\n" + text)
EOF
}

# The JVM's resident set, for comparison with our RSS-based figure (includes GC headroom).
rss_bytes() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$PID/status"; }

BEFORE="$(heap_used)"
RSS_BEFORE="$(rss_bytes)"
echo "heap used on the empty server after full GC: $BEFORE bytes" >&2
cat "$TMP/heap_info.txt" >&2

CREATED="$(python3 "$LOAD" --port "$PORT" --parents "$PARENTS" --children "$CHILDREN" --data-len "$DATA_LEN" --window "$WINDOW")"

AFTER="$(heap_used)"
RSS_AFTER="$(rss_bytes)"
echo "heap used after loading $CREATED znodes and full GC: $AFTER bytes" >&2
cat "$TMP/heap_info.txt" >&2

echo "top classes (jmap -histo:live):" >&2
jcmd "$PID" GC.class_histogram 2>/dev/null | sed -n '1,16p' >&2 || true

python3 - "$BEFORE" "$AFTER" "$CREATED" "$RSS_BEFORE" "$RSS_AFTER" <<'EOF'
import sys
before, after, created, rss_before, rss_after = (int(x) for x in sys.argv[1:6])
print("JVM RSS (after full GC, -Xmx only caps it): before %.1f MiB, after %.1f MiB, %.1f bytes/znode"
      % (rss_before / 2**20, rss_after / 2**20, (rss_after - rss_before) / created))
print("ZooKeeper heap: before %.1f MiB, after %.1f MiB, grown %.1f MiB for %d znodes"
      % (before / 2**20, after / 2**20, (after - before) / 2**20, created))
print("bytes/znode: %.1f" % ((after - before) / created))
EOF
