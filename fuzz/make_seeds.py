#!/usr/bin/env python3
"""Writes the seed inputs of fuzz/corpus/{session,datadir,peer} from real captures:
the client frames Apache ZooKeeper 3.8 received (crates/zk-proto/tests/golden), its data
directories (tests/data/zookeeper-3.8*), and a Zab conversation as server 1 sees it in an
election, a sync and a broadcast (as leader and as follower). The fuzzer grows the corpus
from these; the inputs it finds worth keeping are committed beside them.

    python3 fuzz/make_seeds.py
"""

import hashlib
import os
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
SEP = b"~~~~"


def save(target, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def session_seeds():
    lines = open(os.path.join(ROOT, "crates/zk-proto/tests/golden/zookeeper-3.8.txt")).read().splitlines()
    c2s = [l.split() for l in lines if l.startswith("c2s ")]
    connects = [bytes.fromhex(l[3]) for l in c2s if l[1] == "connect" and len(l) > 3]
    requests = [bytes.fromhex(l[3]) for l in c2s if l[1] == "request" and len(l) > 3]
    words = [l[2].encode() for l in c2s if l[1] == "4lw"]
    hello = connects[0]
    save("session", hello + b"".join(requests))
    # Everything but what ends the connection (closeSession, auth, the unknown opcode):
    # the whole pipeline on one live session.
    def op(r):
        return struct.unpack(">i", r[8:12])[0]
    save("session", hello + b"".join(r for r in requests if op(r) not in (-11, 100, 999)))
    for r in requests:
        save("session", hello + r)
    # Two connections, the second without the readOnly byte.
    save("session", hello + b"".join(requests[:20]) + SEP + connects[1] + b"".join(requests[20:40]))
    for w in set(words) | {b"ruok", b"srvr", b"mntr", b"stat", b"conf"}:
        save("session", w)


def trimmed_log(data):
    return data.rstrip(b"\0")


def datadir_seeds():
    base = os.path.join(ROOT, "tests", "data")
    for variant, tag in (("zookeeper-3.8", 0), ("zookeeper-3.8-gz", 1), ("zookeeper-3.8-snappy", 2)):
        d = os.path.join(base, variant, "version-2")
        files = sorted(os.listdir(d))
        log = open(os.path.join(d, "log.1"), "rb").read()
        for snap in (f for f in files if f.startswith("snapshot.")):
            data = open(os.path.join(d, snap), "rb").read()
            save("datadir", bytes([tag]) + data + SEP + trimmed_log(log))
            save("datadir", bytes([tag]) + data)
    log = open(os.path.join(base, "zookeeper-3.8", "version-2", "log.1"), "rb").read()
    save("datadir", bytes([0]) + SEP + trimmed_log(log))
    save("datadir", bytes([0]) + SEP + log)


# --- protobuf, by hand (proto/zk_peer.proto) ---------------------------------------------
def varint(n):
    n &= (1 << 64) - 1
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def f_varint(field, n):
    return varint(field << 3) + varint(n)


def f_bytes(field, data):
    return varint(field << 3 | 2) + varint(len(data)) + data


def vote(leader, zxid, peer_epoch, election_epoch, state):
    return f_bytes(2, f_varint(1, leader) + f_varint(2, zxid) + f_varint(3, peer_epoch)
                   + f_varint(4, election_epoch) + f_varint(5, state))


def txn(zxid, data):
    return f_varint(1, zxid) + f_bytes(2, data)


def event(op, body):
    return bytes([op]) + struct.pack(">H", len(body)) + body


FROM2, FROM3, TICK, DISK = 0, 1, 2, 3
LOOKING, FOLLOWING, LEADING = 0, 1, 2
Z1 = (1 << 32) | 1


def peer_seeds():
    # Server 1 follows server 3: election, sync by DIFF, a proposal and its commit, pings.
    follow = [
        event(FROM2, vote(3, 0, 0, 1, LOOKING)),
        event(FROM3, vote(3, 0, 0, 1, LOOKING)),
        event(TICK, b"\0" * 250),
        event(FROM3, vote(3, 0, 1, 1, LEADING)),
        event(FROM3, f_varint(4, 1)),                       # LEADERINFO epoch 1
        event(DISK, b""),
        event(FROM3, f_bytes(9, b"")),                      # DIFF, empty
        event(FROM3, f_varint(6, 1 << 32)),                 # NEWLEADER
        event(DISK, b""),
        event(FROM3, f_varint(8, 1)),                       # UPTODATE
        event(FROM3, f_bytes(12, txn(Z1, b"txn-bytes"))),   # PROPOSAL
        event(DISK, b""),
        event(FROM3, f_varint(14, Z1)),                     # COMMIT
        event(FROM3, f_bytes(16, b"")),                     # PING
        event(TICK, b"\0" * 100),
        event(FROM3, f_varint(10, 0)),                      # TRUNC
        event(FROM3, f_bytes(11, f_varint(1, Z1) + f_bytes(2, b"state"))),  # SNAP
        event(FROM3, f_bytes(18, f_varint(1, 2) + f_varint(2, Z1) + f_varint(3, 1))),  # HANDOFF
        event(FROM3, f_bytes(19, f_varint(1, Z1) + f_bytes(2, b"\x01\x02\x03") + f_bytes(5, b"\x01\x02\x03"))),
    ]
    save("peer", b"".join(follow))
    # Server 1 leads: votes for 1, FOLLOWERINFO, ACKEPOCH, ACK of NEWLEADER, a forwarded write.
    lead = [
        event(FROM2, vote(1, 0, 0, 1, LOOKING)),
        event(FROM3, vote(1, 0, 0, 1, LOOKING)),
        event(TICK, b"\0" * 250),
        event(FROM2, vote(1, 0, 1, 1, FOLLOWING)),
        event(FROM2, f_bytes(3, f_varint(1, 0) + f_varint(2, 0))),    # FOLLOWERINFO
        event(DISK, b""),
        event(FROM2, f_bytes(5, f_varint(1, 0) + f_varint(2, 0))),    # ACKEPOCH
        event(DISK, b""),
        event(FROM2, f_varint(7, 1 << 32)),                           # ACK NEWLEADER
        event(FROM2, f_bytes(15, b"forwarded")),                      # REQUEST
        event(FROM2, f_varint(13, Z1)),                               # ACK
        event(FROM2, f_bytes(16, b"touches")),                        # PING
        event(FROM2, f_bytes(17, b"token")),                          # SYNC_DONE
        event(TICK, b"\0" * 600),
        event(4, b"\0\0"),                                            # link to 2 down (even length)
        event(4, b"\0"),                                              # and up (odd)
    ]
    save("peer", b"".join(lead))
    for e in follow + lead:
        save("peer", e)


if __name__ == "__main__":
    session_seeds()
    datadir_seeds()
    peer_seeds()
    for t in ("session", "datadir", "peer"):
        print(t, len(os.listdir(os.path.join(CORPUS, t))), "files")
