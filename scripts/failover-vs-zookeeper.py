#!/usr/bin/env python3
"""Leader failover of a 3-server zkd ensemble against Apache ZooKeeper 3.8 on this machine,
with the same zoo.cfg timing (tickTime, initLimit, syncLimit) for both.

For each server kind and each round: start three servers on loopback, wait for a leader,
write through kazoo, `kill -9` the leader, and time until a write through a client of the
two survivors succeeds again. Prints every round, the medians and the ratio zkd / ZooKeeper.

    scripts/failover-vs-zookeeper.py                 # 5 rounds, tickTime=2000 (defaults)
    FAILOVER_ROUNDS=3 FAILOVER_TICK=500 scripts/failover-vs-zookeeper.py

Needs: apt-get install zookeeper, pip install kazoo, and a release zkd
(cargo build --release --bin zkd).
"""

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from kazoo.client import KazooClient

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from four import four  # noqa: E402  (scripts/four.py: a four-letter word's answer)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZKD = os.path.join(ROOT, "target", "release", "zkd")
ZK_SERVER = "/usr/share/zookeeper/bin/zkServer.sh"
ROUNDS = int(os.environ.get("FAILOVER_ROUNDS", "5"))
TICK = int(os.environ.get("FAILOVER_TICK", "2000"))
INIT = int(os.environ.get("FAILOVER_INIT_LIMIT", "10"))
SYNC = int(os.environ.get("FAILOVER_SYNC_LIMIT", "5"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def mode(port):
    for line in four(port, "srvr").splitlines():
        if line.startswith("Mode: "):
            return line[len("Mode: "):]
    return None


def start(kind, work, n=3):
    ports = [(free_port(), free_port(), free_port()) for _ in range(n)]
    lines = "".join(
        "server.%d=127.0.0.1:%d:%d;127.0.0.1:%d\n" % (i + 1, q, e, c)
        for i, (q, e, c) in enumerate(ports)
    )
    procs = []
    for i, (_, _, client) in enumerate(ports):
        d = os.path.join(work, kind, "s%d" % (i + 1))
        os.makedirs(os.path.join(d, "data"), exist_ok=True)
        with open(os.path.join(d, "data", "myid"), "w") as f:
            f.write("%d\n" % (i + 1))
        cfg = os.path.join(d, "zoo.cfg")
        with open(cfg, "w") as f:
            f.write(
                "tickTime=%d\ninitLimit=%d\nsyncLimit=%d\ndataDir=%s\n"
                "clientPort=%d\nadmin.enableServer=false\n4lw.commands.whitelist=*\n"
                "standaloneEnabled=false\n%s"
                % (TICK, INIT, SYNC, os.path.join(d, "data"), client, lines)
            )
        log = open(os.path.join(d, "server.log"), "w")
        if kind == "zkd":
            cmd = [ZKD, "--config", cfg]
            env = dict(os.environ)
        else:
            cmd = [ZK_SERVER, "start-foreground", cfg]
            env = dict(os.environ, ZOO_LOG_DIR=d, SERVER_JVMFLAGS="-Xmx256m")
        procs.append(
            subprocess.Popen(cmd, stdout=log, stderr=log, env=env, start_new_session=True)
        )
    return procs, [c for (_, _, c) in ports]


def kill9(p):
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except OSError:
        pass
    p.wait()


def leader_of(clients, deadline):
    while time.time() < deadline:
        modes = [mode(c) for c in clients]
        if modes.count("leader") == 1 and modes.count("follower") == len(clients) - 1:
            return modes.index("leader")
        time.sleep(0.05)
    raise RuntimeError("no leader: %r" % [mode(c) for c in clients])


def round_once(kind, work):
    procs, clients = start(kind, work)
    try:
        leader = leader_of(clients, time.time() + 120)
        hosts = ",".join("127.0.0.1:%d" % c for c in clients)
        zk = KazooClient(hosts=hosts, timeout=10)
        zk.start(timeout=60)
        for i in range(100):
            zk.create("/before-%d" % i, b"x")
        zk.stop()
        others = ",".join(
            "127.0.0.1:%d" % c for i, c in enumerate(clients) if i != leader
        )
        zk = KazooClient(hosts=others, timeout=10)
        zk.start(timeout=60)
        kill9(procs[leader])
        killed = time.time()
        while True:
            try:
                zk.create("/after", b"x")
                break
            except Exception:
                if time.time() - killed > 120:
                    raise
                time.sleep(0.01)
        outage = time.time() - killed
        assert len(zk.get_children("/")) >= 101
        zk.stop()
        return outage
    finally:
        for p in procs:
            kill9(p)


def main():
    if not os.path.exists(ZKD):
        sys.exit("build zkd first: cargo build --release --bin zkd")
    kinds = ["zkd"] + (["zookeeper"] if os.path.exists(ZK_SERVER) else [])
    results = {k: [] for k in kinds}
    work = tempfile.mkdtemp(prefix="failover-")
    try:
        for r in range(ROUNDS):
            for kind in kinds:
                shutil.rmtree(os.path.join(work, kind), ignore_errors=True)
                t = round_once(kind, work)
                results[kind].append(t)
                print("round %d %-9s writes resumed %.3f s after kill -9 of the leader" % (r + 1, kind, t), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("tickTime=%d initLimit=%d syncLimit=%d, %d rounds, medians:" % (TICK, INIT, SYNC, ROUNDS))
    med = {k: statistics.median(v) for k, v in results.items()}
    for k, v in med.items():
        print("  %-9s %.3f s" % (k, v))
    if "zookeeper" in med and med["zookeeper"] > 0:
        print("  ratio zkd/ZooKeeper %.2f" % (med["zkd"] / med["zookeeper"]))


if __name__ == "__main__":
    main()
