#!/usr/bin/env python3
"""Capture golden wire frames from a real Apache ZooKeeper 3.8 server.

Starts ZooKeeper from Debian (`/usr/share/zookeeper/bin/zkServer.sh start-foreground`) on a
free loopback port with extended types enabled (TTL nodes), drives it with a raw-socket
jute client through every client opcode (successes and the main errors), records every
frame in both directions, and writes them to a text file (default
`crates/zk-proto/tests/golden/zookeeper-3.8.txt`), which `crates/zk-proto/tests/golden.rs`
decodes and re-encodes with our codec.

Output format, one frame per line:

    <dir> <kind> <op> <hex>

- dir: `c2s` (client to server) or `s2c` (server to client);
- kind: `connect` (ConnectRequest / ConnectResponse; op 0), `request` (RequestHeader + body;
  op = the opcode), `reply` (ReplyHeader + body; op = the opcode of the request it
  answers, known from its xid), `notification` (ReplyHeader with xid -1 + WatcherEvent;
  op 0), `4lw` (raw four-letter-word bytes and the raw text answer; op = the word);
- hex: lowercase, no spaces. Frames include their 4-byte big-endian length prefix; 4lw
  lines are raw bytes. An s2c 4lw line with no hex means the server sent nothing.

Lines starting with `#` are comments; one precedes each scenario. Nondeterministic values
(timestamps, session ids, passwords, zxids) are kept as captured.

The server is always killed at the end, even on error. Standard library only.

Usage: python3 scripts/capture-golden.py [OUT_FILE]
"""
import base64
import collections
import hashlib
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
HOST = "127.0.0.1"
JVMFLAGS = "-Dzookeeper.extendedTypesEnabled=true"

# Opcodes (ZooDefs.OpCode).
CREATE, DELETE, EXISTS, GET_DATA, SET_DATA, GET_ACL, SET_ACL, GET_CHILDREN = 1, 2, 3, 4, 5, 6, 7, 8
SYNC, PING, GET_CHILDREN2, CHECK, MULTI, CREATE2, RECONFIG = 9, 11, 12, 13, 14, 15, 16
CHECK_WATCHES, REMOVE_WATCHES, CREATE_CONTAINER, DELETE_CONTAINER = 17, 18, 19, 20
CREATE_TTL, MULTI_READ = 21, 22
AUTH, SET_WATCHES, SASL, GET_EPHEMERALS, GET_ALL_CHILDREN_NUMBER = 100, 101, 102, 103, 104
SET_WATCHES2, ADD_WATCH, WHO_AM_I, CLOSE_SESSION = 105, 106, 107, -11

XID_NOTIFICATION, XID_PING, XID_AUTH, XID_SET_WATCHES = -1, -2, -4, -8


# ---------------------------------------------------------------------------------------
# jute encoding helpers


def i32(v):
    return struct.pack(">i", v)


def i64(v):
    return struct.pack(">q", v)


def boolean(v):
    return b"\1" if v else b"\0"


def ustr(s):
    b = s if isinstance(s, bytes) else s.encode()
    return i32(len(b)) + b


def buf(b):
    if b is None:
        return i32(-1)
    return i32(len(b)) + b


def strings(items):
    return i32(len(items)) + b"".join(ustr(s) for s in items)


def acl_list(entries):
    out = i32(len(entries))
    for perms, scheme, ident in entries:
        out += i32(perms) + ustr(scheme) + ustr(ident)
    return out


OPEN = [(31, "world", "anyone")]
READ_ONLY_WORLD = [(1, "world", "anyone")]


def digest_id(user, password):
    sha = hashlib.sha1(f"{user}:{password}".encode()).digest()
    return f"{user}:{base64.b64encode(sha).decode()}"


def create_body(path, data=b"", flags=0, acl=OPEN, ttl=None):
    body = ustr(path) + buf(data) + acl_list(acl) + i32(flags)
    if ttl is not None:
        body += i64(ttl)
    return body


def multi_header(op, done=False, err=-1):
    return struct.pack(">i?i", op, done, err)


def multi_body(ops):
    out = b""
    for op, body in ops:
        out += multi_header(op) + body
    return out + multi_header(-1, True, -1)


# ---------------------------------------------------------------------------------------
# recording


class Recorder:
    def __init__(self):
        self.lines = []
        self.counts = collections.Counter()

    def comment(self, text):
        self.lines.append("# " + text)

    def frame(self, direction, kind, op, data):
        hexed = data.hex()
        self.lines.append(f"{direction} {kind} {op} {hexed}".rstrip())
        self.counts[f"{direction} {kind}"] += 1

    def write(self, path, header):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            for line in header:
                f.write("# " + line + "\n")
            for line in self.lines:
                f.write(line + "\n")


# Replies whose error code differed from the expected one (printed at the end).
SURPRISES = []


class Closed(Exception):
    pass


class Conn:
    """One client connection; every frame sent or received is recorded."""

    def __init__(self, rec, port, name):
        self.rec = rec
        self.name = name
        self.sock = socket.create_connection((HOST, port), timeout=5)
        self.rbuf = b""
        self.pending = {}  # xid -> opcode of the request awaiting its reply
        self.handshake_done = False
        self.closed = False
        self.next_xid = 0
        self.session_id = None
        self.passwd = None

    # -- raw io

    def _recv_some(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout()
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.closed = True
            raise Closed()
        self.rbuf += chunk

    def read_frame(self, timeout=5.0):
        """Reads and records one frame. Returns (kind, payload) or None on timeout/close."""
        if self.closed and len(self.rbuf) < 4:
            return None
        deadline = time.monotonic() + timeout
        try:
            while len(self.rbuf) < 4:
                self._recv_some(deadline)
            (n,) = struct.unpack(">i", self.rbuf[:4])
            while len(self.rbuf) < 4 + n:
                self._recv_some(deadline)
        except socket.timeout:
            return None
        except Closed:
            if self.rbuf:
                self.rec.comment(f"{self.name}: connection closed mid-frame, {self.rbuf.hex()}")
                self.rbuf = b""
            return None
        frame, self.rbuf = self.rbuf[: 4 + n], self.rbuf[4 + n:]
        payload = frame[4:]
        if not self.handshake_done:
            self.handshake_done = True
            self.rec.frame("s2c", "connect", 0, frame)
            return ("connect", payload)
        (xid,) = struct.unpack(">i", payload[:4])
        if xid == XID_NOTIFICATION:
            self.rec.frame("s2c", "notification", 0, frame)
            return ("notification", payload)
        if xid not in self.pending:
            raise RuntimeError(f"{self.name}: reply with unexpected xid {xid}: {frame.hex()}")
        op = self.pending.pop(xid)
        self.rec.frame("s2c", "reply", op, frame)
        return ("reply", payload)

    def wait_closed(self, timeout=3.0):
        """Reads (and records) frames until the server closes the connection or timeout.
        Returns True when it was closed."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.read_frame(left)
        return True

    def drain(self, timeout=0.5):
        """Reads frames until nothing arrives for `timeout` seconds; returns how many."""
        n = 0
        while self.read_frame(timeout) is not None:
            n += 1
        return n

    # -- handshake

    def connect(self, session_id=0, passwd=b"\0" * 16, read_only=True, timeout_ms=30000,
                last_zxid=0):
        body = struct.pack(">iqiq", 0, last_zxid, timeout_ms, session_id) + buf(passwd)
        if read_only is not None:
            body += boolean(read_only)
        frame = i32(len(body)) + body
        self.rec.frame("c2s", "connect", 0, frame)
        self.sock.sendall(frame)
        got = self.read_frame()
        if got is None:
            self.rec.comment(f"{self.name}: no connect response")
            return None
        payload = got[1]
        proto, tmo, sid = struct.unpack(">iiq", payload[:16])
        (plen,) = struct.unpack(">i", payload[16:20])
        self.session_id = sid
        self.passwd = payload[20:20 + plen] if plen >= 0 else None
        return proto, tmo, sid, len(payload)

    # -- requests

    def send(self, op, payload=b"", xid=None):
        if xid is None:
            self.next_xid += 1
            xid = self.next_xid
        body = struct.pack(">ii", xid, op) + payload
        frame = i32(len(body)) + body
        self.pending[xid] = op
        self.rec.frame("c2s", "request", op, frame)
        self.sock.sendall(frame)
        return xid

    def call(self, op, payload=b"", xid=None, timeout=5.0):
        """Sends a request and reads frames (recording notifications) until its reply.
        Returns (err, body) or None when no reply came (timeout or close)."""
        want = self.send(op, payload, xid)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            got = self.read_frame(left)
            if got is None:
                return None
            kind, frame = got
            if kind == "reply":
                rxid, _zxid, err = struct.unpack(">iqi", frame[:16])
                if rxid == want:
                    return err, frame[16:]

    def expect(self, want_err, op, payload=b"", xid=None):
        got = self.call(op, payload, xid)
        if got is None:
            raise RuntimeError(f"{self.name}: no reply to op {op}")
        if got[0] != want_err:
            SURPRISES.append(f"{self.name}: op {op} answered err {got[0]}, expected {want_err}")
        return got[1]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------------------------------
# server


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def four_letter_raw(port, data, timeout=5.0):
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out


def wait_ready(port, proc, deadline_s=90):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"ZooKeeper exited with status {proc.returncode}")
        try:
            # ruok answers imok as soon as the port listens; srvr also says whether the
            # server is serving requests yet (before that, a connect is just closed).
            if (four_letter_raw(port, b"ruok", timeout=1) == b"imok"
                    and four_letter_raw(port, b"srvr", timeout=1).startswith(b"Zookeeper version")):
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError("ZooKeeper did not answer ruok in time")


def start_server(work, port):
    data = os.path.join(work, "data")
    os.makedirs(data)
    conf = os.path.join(work, "zoo.cfg")
    with open(conf, "w") as f:
        f.write(
            "tickTime=2000\n"
            f"dataDir={data}\n"
            f"clientPort={port}\n"
            f"clientPortAddress={HOST}\n"
            "4lw.commands.whitelist=*\n"
            "admin.enableServer=false\n"
        )
    env = dict(os.environ, ZOO_LOG_DIR=work, SERVER_JVMFLAGS=JVMFLAGS)
    log = open(os.path.join(work, "server.out"), "wb")
    proc = subprocess.Popen(
        [ZK_SERVER, "start-foreground", conf],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    return proc


def stop_server(proc):
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


# ---------------------------------------------------------------------------------------
# scenarios


def scenarios(rec, port, notes):
    R = rec.comment

    def conn(name, read_only=True):
        c = Conn(rec, port, name)
        c.connect(read_only=read_only)
        return c

    # -- handshakes -----------------------------------------------------------------------
    R("connect: new session, ConnectRequest with the trailing readOnly byte (conn A)")
    a = Conn(rec, port, "A")
    _, _, _, n = a.connect(read_only=False)
    notes.append(f"ConnectResponse to a request with readOnly: {n} bytes")

    R("connect: new session, ConnectRequest without the readOnly byte (conn B)")
    b = Conn(rec, port, "B")
    _, _, _, n = b.connect(read_only=None)
    notes.append(f"ConnectResponse to a request without readOnly: {n} bytes")
    R("closeSession: conn B (no readOnly byte)")
    b.expect(0, CLOSE_SESSION)
    b.wait_closed()
    b.close()

    R("connect: reconnect with a bogus session id and password (expired answer, then close)")
    x = Conn(rec, port, "X")
    got = x.connect(session_id=0x0123456789ABCDEF, passwd=bytes(range(16)), read_only=False,
                    last_zxid=0)
    notes.append(f"bogus session reconnect answered {got}; closed={x.wait_closed()}")
    x.close()

    R("connect: new session on conn V")
    v = conn("V", read_only=False)
    R("connect: reconnect to live session V with a wrong password (expired answer); the "
      "server also closes V's existing connection")
    x = Conn(rec, port, "X2")
    got = x.connect(session_id=v.session_id, passwd=b"\x55" * 16, read_only=False)
    notes.append(f"wrong password reconnect answered {got}; closed={x.wait_closed()}")
    x.close()
    notes.append(f"old connection of the session after a wrong-password reconnect: "
                 f"closed={v.wait_closed(2.0)}")
    v.close()

    # -- create ---------------------------------------------------------------------------
    R("create: persistent (flags 0) /golden")
    a.expect(0, CREATE, create_body("/golden", b"root data", 0))
    R("create: ephemeral (flags 1)")
    a.expect(0, CREATE, create_body("/golden/eph", b"e", 1))
    R("create: persistent sequential (flags 2)")
    a.expect(0, CREATE, create_body("/golden/pseq-", b"p", 2))
    R("create: ephemeral sequential (flags 3)")
    a.expect(0, CREATE, create_body("/golden/eseq-", b"", 3))
    R("create: null data (buffer length -1)")
    a.expect(0, CREATE, create_body("/golden/null", None, 0))
    R("create: empty data (buffer length 0)")
    a.expect(0, CREATE, create_body("/golden/empty", b"", 0))
    R("create2 (op 15): persistent, reply carries the Stat")
    a.expect(0, CREATE2, create_body("/golden/c2", b"c2", 0))
    R("create2 (op 15): ephemeral sequential")
    a.expect(0, CREATE2, create_body("/golden/c2seq-", b"", 3))
    R("createContainer (op 19, flags 4)")
    a.expect(0, CREATE_CONTAINER, create_body("/golden/box", b"box", 4))
    R("createTTL (op 21, flags 5, ttl 10000)")
    a.expect(0, CREATE_TTL, create_body("/golden/ttl", b"t", 5, ttl=10000))
    R("createTTL (op 21, flags 6 persistent sequential with TTL, ttl 10000)")
    a.expect(0, CREATE_TTL, create_body("/golden/ttlseq-", b"ts", 6, ttl=10000))
    R("create: NodeExists error (-110)")
    a.expect(-110, CREATE, create_body("/golden", b"again", 0))
    R("create: NoNode error, missing parent (-101)")
    a.expect(-101, CREATE, create_body("/nope/child", b"", 0))
    R("create: NoChildrenForEphemerals error (-108)")
    a.expect(-108, CREATE, create_body("/golden/eph/child", b"", 0))
    R("create: InvalidACL error, empty ACL list (-114)")
    a.expect(-114, CREATE, create_body("/golden/noacl", b"", 0, acl=[]))
    R("create: path /a/ while /a does not exist: NoNode (-101), the parent is checked first")
    a.expect(-101, CREATE, create_body("/a/", b"", 0))
    R("create: /a (persistent)")
    a.expect(0, CREATE, create_body("/a", b"", 0))
    R("create: BadArguments error, path with a trailing slash /a/ (-8)")
    a.expect(-8, CREATE, create_body("/a/", b"", 0))
    R("create: BadArguments error, path containing control char 0x01 (-8)")
    a.expect(-8, CREATE, create_body(b"/ctl\x01", b"", 0))
    R("createTTL: BadArguments error, ttl 0 is out of range (-8)")
    got = a.call(CREATE_TTL, create_body("/golden/ttl0", b"", 5, ttl=0))
    notes.append(f"createTTL ttl=0 answered {got}")

    # -- delete ---------------------------------------------------------------------------
    R("create: /golden/del, to be deleted")
    a.expect(0, CREATE, create_body("/golden/del", b"d", 0))
    R("delete (op 2): ok with version 0")
    a.expect(0, DELETE, ustr("/golden/del") + i32(0))
    R("delete: BadVersion error (-103)")
    a.expect(-103, DELETE, ustr("/golden/empty") + i32(5))
    R("delete: NotEmpty error (-111)")
    a.expect(-111, DELETE, ustr("/golden") + i32(-1))
    R("delete: NoNode error (-101)")
    a.expect(-101, DELETE, ustr("/golden/missing") + i32(-1))

    # -- exists / getData / setData ----------------------------------------------------------
    R("exists (op 3): hit with watch=true")
    a.expect(0, EXISTS, ustr("/golden/c2") + boolean(True))
    R("exists: miss with watch=true (NoNode -101, arms an exist watch)")
    a.expect(-101, EXISTS, ustr("/golden/later") + boolean(True))
    R("create /golden/later: NodeCreated notification to the exist watch, then the reply")
    a.expect(0, CREATE, create_body("/golden/later", b"", 0))
    R("getData (op 4) with watch=true")
    a.expect(0, GET_DATA, ustr("/golden/c2") + boolean(True))
    R("setData (op 5): ok, fires NodeDataChanged (notification before the reply)")
    a.expect(0, SET_DATA, ustr("/golden/c2") + buf(b"c2 v1") + i32(0))
    R("setData: BadVersion error (-103)")
    a.expect(-103, SET_DATA, ustr("/golden/c2") + buf(b"x") + i32(7))
    R("setData: NoNode error (-101)")
    a.expect(-101, SET_DATA, ustr("/golden/missing") + buf(b"x") + i32(-1))
    R("setData: null data")
    a.expect(0, SET_DATA, ustr("/golden/empty") + buf(None) + i32(-1))
    R("getData: node created with null data")
    resp = a.expect(0, GET_DATA, ustr("/golden/null") + boolean(False))
    notes.append(f"getData of null-data node: data length field {struct.unpack('>i', resp[:4])[0]}")
    R("getData: node created with empty data, then set to null data")
    resp = a.expect(0, GET_DATA, ustr("/golden/empty") + boolean(False))
    notes.append(f"getData of empty-then-null node: data length {struct.unpack('>i', resp[:4])[0]}")
    R("getData: node with data")
    a.expect(0, GET_DATA, ustr("/golden") + boolean(False))
    R("getData: NoNode error (-101)")
    a.expect(-101, GET_DATA, ustr("/golden/missing") + boolean(True))

    # -- auth / ACLs ------------------------------------------------------------------------
    R("auth (op 100, xid -4): digest user:pass, success")
    a.expect(0, AUTH, i32(0) + ustr("digest") + buf(b"user:pass"), xid=XID_AUTH)
    R("whoAmI (op 107): ip and digest identities")
    a.expect(0, WHO_AM_I)
    R("create: /golden/acl-digest (world ACL) and /golden/acl-world (digest ACL user:pass)")
    a.expect(0, CREATE, create_body("/golden/acl-digest", b"", 0))
    a.expect(0, CREATE, create_body("/golden/acl-world", b"", 0,
                                    acl=[(31, "digest", digest_id("user", "pass"))]))
    R("setACL (op 7): digest ACL user:pass plus world read")
    a.expect(0, SET_ACL, ustr("/golden/acl-digest")
             + acl_list([(31, "digest", digest_id("user", "pass")), (1, "world", "anyone")])
             + i32(-1))
    R("setACL: world ACL, version 0")
    a.expect(0, SET_ACL, ustr("/golden/acl-world") + acl_list(OPEN) + i32(0))
    R("getACL (op 6): digest + world ACL")
    a.expect(0, GET_ACL, ustr("/golden/acl-digest"))
    R("getACL: world ACL")
    a.expect(0, GET_ACL, ustr("/golden"))
    R("getACL: NoNode error (-101)")
    a.expect(-101, GET_ACL, ustr("/golden/missing"))
    R("create: /golden/locked with ACL world:anyone read-only")
    a.expect(0, CREATE, create_body("/golden/locked", b"l", 0, acl=READ_ONLY_WORLD))
    R("setACL: NoAuth error on a node whose ACL is world:anyone read-only (-102)")
    a.expect(-102, SET_ACL, ustr("/golden/locked") + acl_list(OPEN) + i32(-1))
    R("setACL: BadVersion error (-103)")
    a.expect(-103, SET_ACL, ustr("/golden/acl-world") + acl_list(OPEN) + i32(9))
    R("setACL: InvalidACL error, digest id without a hash (-114)")
    a.expect(-114, SET_ACL, ustr("/golden/acl-world") + acl_list([(31, "digest", "nohash")])
             + i32(-1))
    R("create: NoAuth error, creating under a node without CREATE permission (-102)")
    a.expect(-102, CREATE, create_body("/golden/locked/kid", b"", 0))

    # -- children ---------------------------------------------------------------------------
    R("getChildren (op 8) with watch=true")
    a.expect(0, GET_CHILDREN, ustr("/golden/box") + boolean(True))
    R("create under the watched node: NodeChildrenChanged notification, then the reply")
    a.expect(0, CREATE, create_body("/golden/box/item", b"", 0))
    R("getChildren: NoNode error (-101)")
    a.expect(-101, GET_CHILDREN, ustr("/golden/missing") + boolean(False))
    R("getChildren2 (op 12): children and Stat")
    a.expect(0, GET_CHILDREN2, ustr("/golden") + boolean(False))
    R("getChildren2: no children")
    a.expect(0, GET_CHILDREN2, ustr("/golden/c2") + boolean(False))
    R("sync (op 9)")
    a.expect(0, SYNC, ustr("/golden"))
    R("ping (op 11, xid -2)")
    a.expect(0, PING, xid=XID_PING)
    R("getAllChildrenNumber (op 104)")
    a.expect(0, GET_ALL_CHILDREN_NUMBER, ustr("/golden"))
    R("getAllChildrenNumber: NoNode error (-101)")
    got = a.call(GET_ALL_CHILDREN_NUMBER, ustr("/golden/missing"))
    notes.append(f"getAllChildrenNumber on a missing node answered {got}")
    R("getEphemerals (op 103): prefix /golden")
    a.expect(0, GET_EPHEMERALS, ustr("/golden"))
    R("getEphemerals: prefix / (all of the session's ephemerals)")
    a.expect(0, GET_EPHEMERALS, ustr("/"))

    # -- multi ------------------------------------------------------------------------------
    R("multi (op 14) succeeding: create, create2, setData, check, delete")
    a.expect(0, MULTI, multi_body([
        (CREATE, create_body("/golden/m", b"m", 0)),
        (CREATE2, create_body("/golden/m/k", b"k", 0)),
        (SET_DATA, ustr("/golden/m") + buf(b"m2") + i32(0)),
        (CHECK, ustr("/golden/m") + i32(1)),
        (DELETE, ustr("/golden/m/k") + i32(0)),
    ]))
    R("multi failing: create ok, delete missing, setData -> results 0/-101/-2")
    got = a.call(MULTI, multi_body([
        (CREATE, create_body("/golden/f", b"", 0)),
        (DELETE, ustr("/golden/missing") + i32(-1)),
        (SET_DATA, ustr("/golden/f") + buf(b"") + i32(-1)),
    ]))
    notes.append(f"failed multi: reply header err {got[0] if got else None}")
    R("multi failing on a check (BadVersion -103 in the results)")
    a.call(MULTI, multi_body([
        (CHECK, ustr("/golden/m") + i32(99)),
        (CREATE_CONTAINER, create_body("/golden/mc", b"", 4)),
    ]))
    R("multi succeeding: createContainer and createTTL inside a multi")
    a.call(MULTI, multi_body([
        (CREATE_CONTAINER, create_body("/golden/mc", b"", 4)),
        (CREATE_TTL, create_body("/golden/mttl", b"", 5, ttl=10000)),
    ]))
    R("multi: empty op list")
    a.call(MULTI, multi_body([]))
    R("multiRead (op 22): getData ok, getData NoNode, getChildren ok, getChildren NoNode")
    a.call(MULTI_READ, multi_body([
        (GET_DATA, ustr("/golden/c2") + boolean(False)),
        (GET_DATA, ustr("/golden/nope") + boolean(False)),
        (GET_CHILDREN, ustr("/golden/box") + boolean(False)),
        (GET_CHILDREN, ustr("/golden/nope") + boolean(False)),
    ]))

    # -- reconfig ---------------------------------------------------------------------------
    R("reconfig (op 16): RECONFIGDISABLED (-123)")
    got = a.call(RECONFIG, ustr("") + ustr("") + ustr("") + i64(-1))
    notes.append(f"reconfig answered {got}")

    # -- checkWatches / removeWatches -------------------------------------------------------
    R("getData /golden/c2 and getChildren /golden with watch=true, for checkWatches below")
    a.expect(0, GET_DATA, ustr("/golden/c2") + boolean(True))
    a.expect(0, GET_CHILDREN, ustr("/golden") + boolean(True))
    R("checkWatches (op 17): existing data watch (type 2 Data)")
    got = a.call(CHECK_WATCHES, ustr("/golden/c2") + i32(2))
    notes.append(f"checkWatches existing answered {got}")
    R("checkWatches: missing watch, NOWATCHER (-121)")
    got = a.call(CHECK_WATCHES, ustr("/golden/null") + i32(2))
    notes.append(f"checkWatches missing answered {got}")
    R("removeWatches (op 18): existing child watch (type 1 Children)")
    got = a.call(REMOVE_WATCHES, ustr("/golden") + i32(1))
    notes.append(f"removeWatches existing answered {got}")
    R("removeWatches: existing data watch (type 3 Any)")
    got = a.call(REMOVE_WATCHES, ustr("/golden/c2") + i32(3))
    R("removeWatches: missing watch, NOWATCHER (-121)")
    got = a.call(REMOVE_WATCHES, ustr("/golden") + i32(1))
    notes.append(f"removeWatches missing answered {got}")

    # -- setWatches / setWatches2 ----------------------------------------------------------
    R("setWatches (op 101, xid -8), relativeZxid 0 on a new conn S: catch-up notifications "
      "(data changed, deleted, created, children changed) then the reply")
    s = conn("S")
    got = s.call(SET_WATCHES, i64(0)
                 + strings(["/golden", "/golden/gone"])       # data watches
                 + strings(["/golden/c2", "/golden/absent"])  # exist watches
                 + strings(["/golden/box"]),                  # child watches
                 xid=XID_SET_WATCHES)
    notes.append(f"setWatches answered {got}")
    s.drain(0.3)
    R("closeSession: conn S")
    s.expect(0, CLOSE_SESSION)
    s.wait_closed()
    s.close()
    R("setWatches2 (op 105, xid -8), relativeZxid 0 on a new conn S2, with persistent and "
      "persistent-recursive watches")
    s2 = conn("S2")
    got = s2.call(SET_WATCHES2, i64(0)
                  + strings(["/golden/c2"])
                  + strings(["/golden/later", "/golden/absent"])
                  + strings(["/golden"])
                  + strings(["/golden/pw"])
                  + strings(["/golden/rw"]),
                  xid=XID_SET_WATCHES)
    notes.append(f"setWatches2 answered {got}")
    s2.drain(0.3)
    R("create /golden/pw from conn A: S2's persistent watch fires NodeCreated")
    a.expect(0, CREATE, create_body("/golden/pw", b"", 0))
    s2.drain(0.5)
    R("closeSession: conn S2")
    s2.expect(0, CLOSE_SESSION)
    s2.wait_closed()
    s2.close()

    # -- addWatch -------------------------------------------------------------------------
    R("addWatch (op 106) mode 0 (persistent) on /golden/aw, conn W")
    w = conn("W")
    w.expect(0, ADD_WATCH, ustr("/golden/aw") + i32(0))
    R("addWatch mode 1 (persistent recursive) on /golden/rw")
    w.expect(0, ADD_WATCH, ustr("/golden/rw") + i32(1))
    R("conn A creates /golden/aw and sets its data; W's persistent watch fires twice")
    a.expect(0, CREATE, create_body("/golden/aw", b"", 0))
    a.expect(0, SET_DATA, ustr("/golden/aw") + buf(b"1") + i32(-1))
    w.drain(0.5)
    R("conn A creates /golden/rw, /golden/rw/child and /golden/rw/child/grand, sets and "
      "deletes the grandchild; W's recursive watch sees NodeCreated for each (grandchild "
      "included), then NodeDataChanged and NodeDeleted for the grandchild")
    a.expect(0, CREATE, create_body("/golden/rw", b"", 0))
    a.expect(0, CREATE, create_body("/golden/rw/child", b"", 0))
    a.expect(0, CREATE, create_body("/golden/rw/child/grand", b"", 0))
    a.expect(0, SET_DATA, ustr("/golden/rw/child/grand") + buf(b"g") + i32(-1))
    a.expect(0, DELETE, ustr("/golden/rw/child/grand") + i32(-1))
    w.drain(0.5)
    R("closeSession: conn W")
    w.expect(0, CLOSE_SESSION)
    w.wait_closed()
    w.close()

    # -- check standalone ----------------------------------------------------------------
    R("check (op 13) standalone, outside a multi, conn K (whatever the server does)")
    k = conn("K")
    got = k.call(CHECK, ustr("/golden") + i32(0), timeout=2.0)
    notes.append(f"standalone check answered {got}; conn closed={k.closed}")
    if not k.closed:
        R("ping on conn K after the standalone check")
        got = k.call(PING, xid=XID_PING, timeout=2.0)
        notes.append(f"ping after standalone check answered {got}; conn closed={k.closed}")
        if not k.closed:
            R("closeSession: conn K")
            k.call(CLOSE_SESSION, timeout=2.0)
            k.wait_closed()
    k.close()

    # -- sasl ------------------------------------------------------------------------------
    R("sasl (op 102) on conn L, no SASL configured on the server")
    sconn = conn("L")
    got = sconn.call(SASL, buf(b"\x01\x02\x03\x04"), timeout=3.0)
    notes.append(f"sasl answered {got}; conn closed={sconn.closed}")
    if not sconn.closed:
        closed = sconn.wait_closed(1.0)
        notes.append(f"after sasl: conn closed={closed}")
        if not closed:
            R("closeSession: conn L")
            sconn.call(CLOSE_SESSION, timeout=2.0)
            sconn.wait_closed()
    sconn.close()

    # -- auth failure ----------------------------------------------------------------------
    R("auth (op 100, xid -4) with an unknown scheme on conn F: AUTHFAILED (-115), then close")
    f = conn("F")
    got = f.call(AUTH, i32(0) + ustr("bogus") + buf(b"whatever"), xid=XID_AUTH, timeout=3.0)
    notes.append(f"auth unknown scheme answered {got}; closed={f.wait_closed()}")
    f.close()

    # -- unknown opcode ---------------------------------------------------------------------
    R("unknown opcode 999 on conn U: UNIMPLEMENTED (-6), then close")
    u = conn("U")
    got = u.call(999, b"\0\0\0\0", timeout=3.0)
    notes.append(f"opcode 999 answered {got}; closed={u.wait_closed()}")
    u.close()

    # -- deleteContainer from a client ------------------------------------------------------
    R("createContainer: /golden/box2")
    a.expect(0, CREATE_CONTAINER, create_body("/golden/box2", b"", 4))
    R("deleteContainer (op 20) sent by a client on conn D (whatever the server does)")
    d = conn("D")
    got = d.call(DELETE_CONTAINER, ustr("/golden/box2") + i32(-1), timeout=2.0)
    notes.append(f"client deleteContainer answered {got}; conn closed={d.closed}")
    if not d.closed:
        R("closeSession: conn D")
        d.call(CLOSE_SESSION, timeout=2.0)
        d.wait_closed()
    d.close()

    # -- closeSession with ephemerals and watchers -------------------------------------------
    R("addWatch mode 1 (persistent recursive) on / from conn O")
    o = conn("O")
    o.expect(0, ADD_WATCH, ustr("/") + i32(1))
    R("conn H creates an ephemeral and watches it (exists, watch=true)")
    h = conn("H")
    h.expect(0, CREATE, create_body("/golden/h-eph", b"h", 1))
    h.expect(0, EXISTS, ustr("/golden/h-eph") + boolean(True))
    R("conn O's recursive watch on / sees NodeCreated for H's ephemeral")
    o.drain(0.3)
    R("closeSession (op -11) on conn H: H's own NodeDeleted notification, then the reply")
    h.expect(0, CLOSE_SESSION)
    notes.append(f"closeSession: conn H closed by the server={h.wait_closed()}")
    h.close()
    R("conn O's recursive watch on / sees H's ephemeral deleted")
    o.drain(0.5)
    R("closeSession: conn O")
    o.expect(0, CLOSE_SESSION)
    o.wait_closed()
    o.close()

    R("closeSession: conn A (holds ephemerals)")
    a.expect(0, CLOSE_SESSION)
    a.wait_closed()
    a.close()


def four_letter_words(rec, port, notes):
    for word in ["ruok", "srvr", "stat", "conf", "cons", "envi", "mntr", "isro", "wchs",
                 "dirs", "gtmk", "xxxx"]:
        data = word.encode()
        if word == "xxxx":
            rec.comment("4lw: unknown word xxxx (read as a frame length; the server closes "
                        "the connection without answering)")
        else:
            rec.comment(f"4lw: {word}")
        rec.frame("c2s", "4lw", word, data)
        out = four_letter_raw(port, data)
        rec.frame("s2c", "4lw", word, out)
        if word == "xxxx":
            notes.append(f"xxxx answered {out!r}")
    rec.comment("4lw: stmk with an 8-byte trace mask (12 bytes)")
    data = b"stmk" + i64(0x312)
    rec.frame("c2s", "4lw", "stmk", data)
    rec.frame("s2c", "4lw", "stmk", four_letter_raw(port, data))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.normpath(os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "crates", "zk-proto", "tests",
        "golden", "zookeeper-3.8.txt"))
    work = tempfile.mkdtemp(prefix="zkgolden-")
    port = free_port()
    rec = Recorder()
    notes = []
    proc = None
    ok = False
    try:
        proc = start_server(work, port)
        wait_ready(port, proc)
        version = four_letter_raw(port, b"srvr").decode(errors="replace").splitlines()
        version = version[0] if version else "unknown"
        scenarios(rec, port, notes)
        four_letter_words(rec, port, notes)
        ok = True
    finally:
        if proc is not None:
            stop_server(proc)
        if not ok:
            log = os.path.join(work, "server.out")
            if os.path.exists(log):
                with open(log, "rb") as f:
                    tail = f.read()[-4000:]
                sys.stderr.write("--- server output (tail) ---\n")
                sys.stderr.write(tail.decode(errors="replace") + "\n")
        shutil.rmtree(work, ignore_errors=True)
    header = [
        "Golden wire frames captured from a real Apache ZooKeeper by scripts/capture-golden.py.",
        f"Server: {version}; -Dzookeeper.extendedTypesEnabled=true; standalone.",
        "Format: <dir> <kind> <op> <hex>. dir: c2s | s2c. kind: connect (op 0) | request",
        "(op = opcode) | reply (op = opcode of the request answered) | notification (op 0) |",
        "4lw (op = the word). Hex is the whole frame with its 4-byte length prefix, except",
        "4lw lines (raw bytes; an s2c 4lw line without hex: nothing came back).",
        "Timestamps, session ids, passwords and zxids are as captured.",
    ]
    rec.write(out, header)
    print(f"wrote {len(rec.lines)} lines to {out}")
    for key in sorted(rec.counts):
        print(f"  {key}: {rec.counts[key]}")
    print("observations:")
    for note in notes:
        print("  " + note)
    if SURPRISES:
        print("unexpected error codes:")
        for note in SURPRISES:
            print("  " + note)


if __name__ == "__main__":
    main()
