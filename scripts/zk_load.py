#!/usr/bin/env python3
"""Loads znodes into a ZooKeeper server over one raw jute session, pipelining creates.

The shape matches the zk-tree `tree` bench and `memory` example:
/bench, then /bench/pNNNN (PARENTS of them), each with CHILDREN leaves named
"child-" + 14 digits (20 bytes), holding DATA_LEN bytes, OPEN_ACL_UNSAFE, persistent.

Stdlib only. Used by scripts/measure-zk-heap.sh; loopback only.

  python3 scripts/zk_load.py --port 2181 [--parents 1000] [--children 1000]
                             [--data-len 100] [--window 500]
  python3 scripts/zk_load.py --port 2181 --ping     # just open and close a session
"""
import argparse
import socket
import struct
import sys
import time

OP_CREATE = 1
OP_CLOSE_SESSION = -11
PERMS_ALL = 31


def ustr(s):
    b = s.encode()
    return struct.pack(">i", len(b)) + b


def buffer(b):
    return struct.pack(">i", len(b)) + b


OPEN_ACL = struct.pack(">i", 1) + struct.pack(">i", PERMS_ALL) + ustr("world") + ustr("anyone")


def frame(payload):
    return struct.pack(">i", len(payload)) + payload


class Conn:
    def __init__(self, host, port, timeout_ms=30000):
        self.sock = socket.create_connection((host, port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        # ConnectRequest: protocolVersion, lastZxidSeen, timeOut, sessionId, passwd, readOnly.
        body = struct.pack(">iqiq", 0, 0, timeout_ms, 0) + buffer(b"\0" * 16) + b"\0"
        self.sock.sendall(frame(body))
        resp = self.read_frame()
        _proto, self.timeout, self.session = struct.unpack_from(">iiq", resp, 0)
        if self.session == 0:
            raise RuntimeError("handshake refused")

    def read_frame(self):
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack_from(">i", self.buf, 0)
                if len(self.buf) >= 4 + n:
                    payload = bytes(self.buf[4 : 4 + n])
                    del self.buf[: 4 + n]
                    return payload
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise RuntimeError("server closed the connection")
            self.buf += chunk

    def read_replies(self):
        """Every whole reply frame buffered after one recv: [(xid, zxid, err)]."""
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise RuntimeError("server closed the connection")
        self.buf += chunk
        out = []
        pos = 0
        buf = self.buf
        while len(buf) - pos >= 4:
            (n,) = struct.unpack_from(">i", buf, pos)
            if len(buf) - pos < 4 + n:
                break
            out.append(struct.unpack_from(">iqi", buf, pos + 4))
            pos += 4 + n
        del buf[:pos]
        return out

    def close(self):
        try:
            self.sock.sendall(frame(struct.pack(">ii", 0x7FFFFFFF, OP_CLOSE_SESSION)))
            self.read_frame()
        finally:
            self.sock.close()


def paths(parents, children):
    yield "/bench", b""
    for p in range(parents):
        parent = "/bench/p%04d" % p
        yield parent, b""
        for c in range(children):
            yield "%s/child-%014d" % (parent, c), None


def load(conn, parents, children, data_len, window):
    data = b"d" * data_len
    total = 1 + parents + parents * children
    in_flight = 0
    sent = 0
    done = 0
    xid = 0
    batch = []
    started = time.time()
    last_report = started
    gen = paths(parents, children)
    exhausted = False
    while done < total:
        # Top the window up, in one sendall.
        while not exhausted and in_flight + len(batch) < window:
            try:
                path, d = next(gen)
            except StopIteration:
                exhausted = True
                break
            xid += 1
            body = struct.pack(">ii", xid, OP_CREATE) + ustr(path) + buffer(data if d is None else d) + OPEN_ACL + struct.pack(">i", 0)
            batch.append(frame(body))
        if batch:
            conn.sock.sendall(b"".join(batch))
            in_flight += len(batch)
            sent += len(batch)
            batch = []
        for rxid, _zxid, err in conn.read_replies():
            if err != 0:
                raise RuntimeError("create xid %d failed with err %d" % (rxid, err))
            in_flight -= 1
            done += 1
        now = time.time()
        if now - last_report >= 5:
            last_report = now
            print("  %d/%d created, %.0f/s" % (done, total, done / (now - started)), file=sys.stderr, flush=True)
    elapsed = time.time() - started
    print("created %d znodes in %.1fs (%.0f/s)" % (done, elapsed, done / elapsed), file=sys.stderr, flush=True)
    return done


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--parents", type=int, default=1000)
    ap.add_argument("--children", type=int, default=1000)
    ap.add_argument("--data-len", type=int, default=100)
    ap.add_argument("--window", type=int, default=500)
    ap.add_argument("--ping", action="store_true", help="only open and close a session")
    args = ap.parse_args()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("loopback only")
    conn = Conn(args.host, args.port)
    try:
        if not args.ping:
            n = load(conn, args.parents, args.children, args.data_len, args.window)
            print(n)
    finally:
        conn.close()


if __name__ == "__main__":
    main()
