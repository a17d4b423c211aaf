#!/usr/bin/env python3
"""Drive a real Apache ZooKeeper 3.8 (Debian package) with a real client (kazoo) and dump
the tree it serves, for the storage interoperability tests.

  zk_interop.py drive DATA_DIR OUT
      Start ZooKeeper on an empty DATA_DIR, run a workload through kazoo (creates of every
      kind, sets, deletes, ACLs, ephemerals, sequentials, a transaction), dump the served
      tree to OUT, then kill -9 the server (the client session is never closed, so
      its ephemerals stay in the data dir).

  zk_interop.py serve DATA_DIR OUT
      Start ZooKeeper on an existing DATA_DIR (e.g. written by zk-log), dump the served
      tree to OUT, stop it.

  zk_interop.py workload HOST:PORT OUT
      Run the same workload against a server that is already running (e.g. zkd) and dump
      its tree to OUT; the session is left open (its ephemerals stay).

  zk_interop.py dump HOST:PORT OUT
      Dump the tree a running server serves.

The dump has one line per node, tab-separated: path; data as hex, or `-` for a null buffer;
the eleven Stat fields (czxid mzxid ctime mtime version cversion aversion ephemeralOwner
dataLength numChildren pzxid) space-separated; the ACL as `perms:scheme:id` entries joined
by `,`. Needs: apt-get install zookeeper; pip install kazoo.
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

from kazoo.client import KazooClient
from kazoo.security import make_digest_acl, OPEN_ACL_UNSAFE

ZK_SERVER = "/usr/share/zookeeper/bin/zkServer.sh"
AUTH = ("digest", "alice:secret")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(data_dir):
    work = tempfile.mkdtemp(prefix="zkinterop-")
    port = free_port()
    conf = os.path.join(work, "zoo.cfg")
    with open(conf, "w") as f:
        f.write(f"tickTime=2000\ndataDir={data_dir}\nclientPort={port}\n"
                "clientPortAddress=127.0.0.1\nadmin.enableServer=false\n"
                "4lw.commands.whitelist=*\npreAllocSize=64\n")
    env = dict(os.environ, ZOO_LOG_DIR=work,
               SERVER_JVMFLAGS="-Dzookeeper.extendedTypesEnabled=true")
    proc = subprocess.Popen([ZK_SERVER, "start-foreground", conf], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    end = time.time() + 60
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"srvr")
                if b"Zookeeper version" in s.recv(4096):
                    return proc, port
        except OSError:
            pass
        time.sleep(0.3)
    stop(proc, hard=True)
    raise RuntimeError("ZooKeeper did not start")


def stop(proc, hard=False):
    try:
        os.killpg(proc.pid, signal.SIGKILL if hard else signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def dump(zk):
    nodes = []

    def walk(path):
        data, stat = zk.get(path)
        acls, _ = zk.get_acls(path)
        fields = [stat.czxid, stat.mzxid, stat.ctime, stat.mtime, stat.version,
                  stat.cversion, stat.aversion, stat.ephemeralOwner, stat.dataLength,
                  stat.numChildren, stat.pzxid]
        nodes.append("\t".join([
            path,
            "-" if data is None else data.hex(),
            " ".join(str(x) for x in fields),
            ",".join(f"{a.perms}:{a.id.scheme}:{a.id.id}" for a in acls),
        ]))
        for child in sorted(zk.get_children(path)):
            walk(path.rstrip("/") + "/" + child)

    walk("/")
    return nodes


def workload(zk):
    alice = make_digest_acl("alice", "secret", all=True)
    zk.create("/app", b"root data")
    zk.create("/app/empty", b"")
    zk.create("/app/seq-", b"s1", sequence=True)
    zk.create("/app/seq-", b"s2", sequence=True)
    zk.create("/app/eph", b"e", ephemeral=True)
    zk.create("/app/eseq-", b"", ephemeral=True, sequence=True)
    zk.create("/app/deep/er/still", b"x", makepath=True)
    zk.create("/secret", b"hidden", acl=[alice])
    zk.set("/app", b"v1")
    zk.set("/app", b"v2", version=1)
    zk.delete("/app/deep/er/still")
    zk.create("/gone", b"")
    zk.delete("/gone")
    zk.set_acls("/app/empty", [make_digest_acl("alice", "secret", read=True)] + OPEN_ACL_UNSAFE)
    tx = zk.transaction()
    tx.create("/tx", b"t")
    tx.create("/tx/a", b"a")
    tx.set_data("/app", b"v3")
    tx.check("/app", 3)
    results = tx.commit()
    assert all(not isinstance(r, Exception) for r in results), results
    failed = zk.transaction()
    failed.create("/nope", b"")
    failed.delete("/missing")
    assert any(isinstance(r, Exception) for r in failed.commit())
    for i in range(50):
        zk.create("/many/n-", str(i).encode(), sequence=True, makepath=True)


def main():
    mode, target, out = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode in ("workload", "dump"):
        zk = KazooClient(hosts=target, auth_data=[AUTH], timeout=30)
        zk.start(timeout=30)
        if mode == "workload":
            workload(zk)
        nodes = dump(zk)
        with open(out, "w") as f:
            f.write("".join(line + "\n" for line in nodes))
        if mode == "dump":
            zk.stop()
            zk.close()
        print(f"{mode}: {len(nodes)} nodes dumped to {out}")
        # Leave without closing the workload's session: its ephemerals must stay.
        os._exit(0)
    data_dir = target
    os.makedirs(data_dir, exist_ok=True)
    proc, port = start(data_dir)
    try:
        zk = KazooClient(hosts=f"127.0.0.1:{port}", auth_data=[AUTH], timeout=30)
        zk.start(timeout=30)
        if mode == "drive":
            workload(zk)
        nodes = dump(zk)
        with open(out, "w") as f:
            f.write("".join(line + "\n" for line in nodes))
        if mode == "serve":
            zk.stop()
            zk.close()
    finally:
        # `drive` kills the server under a live session: its ephemerals stay on disk.
        stop(proc, hard=(mode == "drive"))
    print(f"{mode}: {len(nodes)} nodes dumped to {out}")


if __name__ == "__main__":
    main()
