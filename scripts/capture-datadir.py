#!/usr/bin/env python3
"""Produce a real Apache ZooKeeper data directory as test data.

Starts ZooKeeper 3.8 from Debian (`apt-get install zookeeper`) on a free loopback port,
drives it with a raw-socket jute client through every kind of txn (creates of every mode,
setData, setACL, delete, multi that succeeds and one that fails, error txns, sessions that
close with ephemerals, quota nodes), stops it, starts it again so it writes a snapshot of
everything, stops it, and copies `version-2/` to the output directory (default
`tests/data/zookeeper-3.8/version-2`). Tests replay the txn log into our DataTree and
compare with ZooKeeper's own digests and snapshot.

Usage: python3 scripts/capture-datadir.py [OUT_DIR]
"""
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

ZK_SERVER = "/usr/share/zookeeper/bin/zkServer.sh"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def ustr(x):
    b = x.encode()
    return struct.pack(">i", len(b)) + b


def buf(b):
    if b is None:
        return struct.pack(">i", -1)
    return struct.pack(">i", len(b)) + b


def acl_list(entries):
    out = struct.pack(">i", len(entries))
    for perms, scheme, ident in entries:
        out += struct.pack(">i", perms) + ustr(scheme) + ustr(ident)
    return out


OPEN = [(31, "world", "anyone")]


class Client:
    def __init__(self, port, timeout_ms=30000):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        body = struct.pack(">iqiq", 0, 0, timeout_ms, 0) + buf(b"\0" * 16) + b"\0"
        self.sock.sendall(struct.pack(">i", len(body)) + body)
        resp = self.read_frame()
        _, _, self.session = struct.unpack(">iiq", resp[:16])
        self.xid = 0

    def read_frame(self):
        n = struct.unpack(">i", self.read_exact(4))[0]
        return self.read_exact(n)

    def read_exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError("connection closed")
            data += chunk
        return data

    def call(self, op, payload=b"", xid=None):
        if xid is None:
            self.xid += 1
            xid = self.xid
        body = struct.pack(">ii", xid, op) + payload
        self.sock.sendall(struct.pack(">i", len(body)) + body)
        while True:
            frame = self.read_frame()
            rxid, zxid, err = struct.unpack(">iqi", frame[:16])
            if rxid == -1:
                continue  # a watch notification
            return err, frame[16:]

    def create(self, path, data=b"", flags=0, acl=OPEN, op=1, ttl=None):
        payload = ustr(path) + buf(data) + acl_list(acl) + struct.pack(">i", flags)
        if ttl is not None:
            payload += struct.pack(">q", ttl)
        return self.call(op, payload)

    def delete(self, path, version=-1):
        return self.call(2, ustr(path) + struct.pack(">i", version))

    def set_data(self, path, data, version=-1):
        return self.call(5, ustr(path) + buf(data) + struct.pack(">i", version))

    def set_acl(self, path, acl, version=-1):
        return self.call(7, ustr(path) + acl_list(acl) + struct.pack(">i", version))

    def auth(self, scheme, cred):
        return self.call(100, struct.pack(">i", 0) + ustr(scheme) + buf(cred), xid=-4)

    def multi(self, ops):
        payload = b""
        for op, body in ops:
            payload += struct.pack(">i?i", op, False, -1) + body
        payload += struct.pack(">i?i", -1, True, -1)
        return self.call(14, payload)

    def close(self):
        self.call(-11)
        self.sock.close()


def start(conf, logdir):
    env = dict(os.environ, ZOO_LOG_DIR=logdir, SERVER_JVMFLAGS="-Dzookeeper.extendedTypesEnabled=true")
    proc = subprocess.Popen(
        [ZK_SERVER, "start-foreground", conf],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return proc


def wait_ready(port, deadline_s=60):
    end = time.time() + deadline_s
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"ruok")
                if s.recv(4) == b"imok":
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError("ZooKeeper did not start")


def stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def workload(port):
    a = Client(port)
    assert a.create("/app", b"root data")[0] == 0
    assert a.create("/app/null", None)[0] == 0
    assert a.create("/app/seq-", b"s", flags=2)[0] == 0
    assert a.create("/app/seq-", b"s", flags=2)[0] == 0
    assert a.create("/app/eph", b"e", flags=1)[0] == 0
    assert a.create("/app/eseq-", b"", flags=3)[0] == 0
    assert a.create("/box", b"", flags=4, op=19)[0] == 0
    assert a.create("/box/item", b"i")[0] == 0
    assert a.create("/ttl", b"t", flags=5, op=21, ttl=3600000)[0] == 0
    assert a.create("/app/c2", b"c2", op=15)[0] == 0
    assert a.create("/app", b"")[0] == -110  # error txn: NodeExists
    assert a.set_data("/app", b"v1")[0] == 0
    assert a.set_data("/app", b"v2", version=1)[0] == 0
    assert a.set_data("/app", b"v3", version=7)[0] == -103  # error txn: BadVersion
    assert a.delete("/box/item")[0] == 0
    assert a.auth("digest", b"alice:secret")[0] == 0
    assert a.create("/secret", b"s", acl=[(31, "auth", "")])[0] == 0
    assert a.set_acl("/app/c2", [(1, "world", "anyone"), (31, "ip", "127.0.0.1")])[0] == 0
    ok = a.multi([
        (1, ustr("/m") + buf(b"m") + acl_list(OPEN) + struct.pack(">i", 0)),
        (1, ustr("/m/k") + buf(b"") + acl_list(OPEN) + struct.pack(">i", 0)),
        (5, ustr("/m") + buf(b"m2") + struct.pack(">i", 0)),
        (13, ustr("/m") + struct.pack(">i", 1)),
        (2, ustr("/m/k") + struct.pack(">i", 0)),
    ])
    assert ok[0] == 0
    failed = a.multi([
        (1, ustr("/f") + buf(b"") + acl_list(OPEN) + struct.pack(">i", 0)),
        (2, ustr("/missing") + struct.pack(">i", -1)),
        (5, ustr("/f") + buf(b"") + struct.pack(">i", -1)),
    ])
    assert failed[0] == 0
    # quota on /app: limits and stats nodes, as zkCli's setquota writes them
    assert a.create("/zookeeper/quota/app", b"")[0] == 0
    assert a.create("/zookeeper/quota/app/zookeeper_limits", b"count=100,bytes=-1")[0] == 0
    assert a.create("/zookeeper/quota/app/zookeeper_stats", b"count=0,bytes=0")[0] == 0
    assert a.create("/app/more", b"12345")[0] == 0
    b = Client(port)
    assert b.create("/app/b-eph", b"b", flags=1)[0] == 0
    b.close()  # closeSession deletes /app/b-eph
    assert a.delete("/app/null")[0] == 0
    # `a` stays open: its ephemerals are in the snapshot with its session.
    return a


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "tests", "data", "zookeeper-3.8", "version-2")
    work = tempfile.mkdtemp(prefix="zkcap-")
    port = free_port()
    data = os.path.join(work, "data")
    os.makedirs(data)
    conf = os.path.join(work, "zoo.cfg")
    with open(conf, "w") as f:
        f.write(f"tickTime=2000\ndataDir={data}\nclientPort={port}\nclientPortAddress=127.0.0.1\n"
                "admin.enableServer=false\n4lw.commands.whitelist=*\npreAllocSize=64\n"
                "snapCount=1000000\n")
    proc = start(conf, work)
    try:
        wait_ready(port)
        client = workload(port)
        time.sleep(0.5)
    finally:
        stop(proc)
    _ = client
    # A restart writes a snapshot of everything loaded (sessions included: the open one has
    # not expired yet).
    proc = start(conf, work)
    try:
        wait_ready(port)
        time.sleep(1)
    finally:
        stop(proc)
    src = os.path.join(data, "version-2")
    if os.path.exists(out):
        shutil.rmtree(out)
    shutil.copytree(src, out)
    shutil.rmtree(work)
    for name in sorted(os.listdir(out)):
        print(name, os.path.getsize(os.path.join(out, name)))


if __name__ == "__main__":
    main()
