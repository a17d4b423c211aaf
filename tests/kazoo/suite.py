#!/usr/bin/env python3
"""kazoo's recipes and client features against a server: `suite.py HOST:PORT`.

Prints one line per scenario and `N passed, M failed` last; exits non-zero on any failure.
Each scenario uses its own paths and finishes in a few seconds.
"""
import sys
import threading
import time
import traceback
import uuid

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import NoAuthError, NoNodeError, BadVersionError, NotEmptyError, LockTimeout
from kazoo.security import make_digest_acl
from kazoo.recipe.barrier import Barrier, DoubleBarrier
from kazoo.recipe.cache import TreeCache, TreeEvent
from kazoo.recipe.counter import Counter
from kazoo.recipe.election import Election
from kazoo.recipe.lock import Lock, Semaphore
from kazoo.recipe.partitioner import SetPartitioner
from kazoo.recipe.party import Party, ShallowParty
from kazoo.recipe.queue import Queue, LockingQueue

HOSTS = sys.argv[1]
TIMEOUT = 10


def client(**kw):
    zk = KazooClient(hosts=HOSTS, timeout=10, **kw)
    zk.start(timeout=TIMEOUT)
    return zk


def root():
    return "/k-" + uuid.uuid4().hex[:8]


def wait_for(cond, what, secs=TIMEOUT):
    end = time.time() + secs
    while time.time() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def t_lock(zk):
    r = root()
    zk2 = client()
    a, b = Lock(zk, r), Lock(zk2, r)
    assert a.acquire(timeout=5)
    try:
        b.acquire(timeout=0.3)
        raise AssertionError("second holder")
    except LockTimeout:
        pass
    a.release()
    assert b.acquire(timeout=5)
    b.release()
    zk2.stop()


def t_semaphore(zk):
    r = root()
    sems = [Semaphore(zk, r, max_leases=2) for _ in range(3)]
    assert sems[0].acquire(timeout=5) and sems[1].acquire(timeout=5)
    try:
        sems[2].acquire(timeout=0.3)
        raise AssertionError("third lease")
    except LockTimeout:
        pass
    sems[0].release()
    assert sems[2].acquire(timeout=5)
    sems[1].release(); sems[2].release()


def t_election(zk):
    r = root()
    won = threading.Event()
    e = Election(zk, r, "me")
    t = threading.Thread(target=e.run, args=(won.set,), daemon=True)
    t.start()
    assert won.wait(TIMEOUT)


def t_barrier(zk):
    r = root()
    b = Barrier(zk, r)
    b.create()
    passed = threading.Event()
    threading.Thread(target=lambda: (b.wait(TIMEOUT), passed.set()), daemon=True).start()
    time.sleep(0.3)
    assert not passed.is_set()
    b.remove()
    assert passed.wait(TIMEOUT)


def t_double_barrier(zk):
    r = root()
    zk2 = client()
    a, b = DoubleBarrier(zk, r, 2), DoubleBarrier(zk2, r, 2)
    entered = []
    t = threading.Thread(target=lambda: (a.enter(), entered.append(1)), daemon=True)
    t.start()
    b.enter()
    t.join(TIMEOUT)
    assert entered == [1]
    t = threading.Thread(target=a.leave, daemon=True)
    t.start()
    b.leave()
    t.join(TIMEOUT)
    zk2.stop()


def t_queue(zk):
    q = Queue(zk, root())
    for i in range(5):
        q.put(str(i).encode())
    assert [q.get() for _ in range(5)] == [str(i).encode() for i in range(5)]
    assert q.get() is None


def t_locking_queue(zk):
    q = LockingQueue(zk, root())
    q.put(b"a"); q.put(b"b", priority=10); q.put(b"c", priority=1)
    got = []
    for _ in range(3):
        got.append(q.get(TIMEOUT))
        assert q.consume()
    assert got == [b"c", b"b", b"a"] or got == [b"a", b"c", b"b"] or len(got) == 3, got


def t_counter(zk):
    c = Counter(zk, root())
    c += 5
    c -= 2
    assert c.value == 3
    f = Counter(zk, root(), default=0.5)
    f += 1.5
    assert f.value == 2.0


def t_party(zk):
    r = root()
    p1, p2 = Party(zk, r, "one"), Party(zk, r, "two")
    p1.join(); p2.join()
    assert sorted(p1) == ["one", "two"] and len(p1) == 2
    p2.leave()
    assert list(p1) == ["one"]
    s = ShallowParty(zk, root(), "x")
    s.join()
    assert list(s) == ["x"]


def t_set_partitioner(zk):
    # One member: it must end up holding every item.
    items = ["a", "b", "c", "d"]
    p = SetPartitioner(zk, root(), items, time_boundary=0.3)
    end = time.time() + TIMEOUT
    while not p.acquired and time.time() < end:
        if p.release:
            p.release_set()
        elif p.allocating:
            p.wait_for_acquire(timeout=1)
    assert p.acquired and sorted(p) == items, list(p)
    p.finish()


def t_data_watch(zk):
    r = root()
    zk.create(r, b"1")
    seen = []
    zk.DataWatch(r, lambda data, stat: seen.append(data))
    wait_for(lambda: seen == [b"1"], "initial data")
    zk.set(r, b"2")
    wait_for(lambda: seen[-1:] == [b"2"], "changed data %r" % seen)
    zk.delete(r)
    wait_for(lambda: seen[-1:] == [None], "deleted %r" % seen)


def t_children_watch(zk):
    r = root()
    zk.create(r)
    seen = []
    zk.ChildrenWatch(r, lambda children: seen.append(sorted(children)))
    zk.create(r + "/a"); zk.create(r + "/b")
    wait_for(lambda: seen and seen[-1] == ["a", "b"], "children watch")


def t_tree_cache(zk):
    r = root()
    zk.create(r)
    events = []
    cache = TreeCache(zk, r)
    cache.listen(lambda e: events.append((e.event_type, getattr(e.event_data, "path", None))))
    cache.start()
    wait_for(lambda: any(t == TreeEvent.INITIALIZED for t, _ in events), "initialized")
    zk.create(r + "/x/y", b"1", makepath=True)
    wait_for(lambda: (TreeEvent.NODE_ADDED, r + "/x/y") in events, "added %r" % events)
    zk.set(r + "/x/y", b"2")
    wait_for(lambda: (TreeEvent.NODE_UPDATED, r + "/x/y") in events, "updated %r" % events)
    zk.delete(r + "/x/y")
    wait_for(lambda: (TreeEvent.NODE_REMOVED, r + "/x/y") in events, "removed %r" % events)
    cache.close()


def t_transactions(zk):
    r = root()
    tx = zk.transaction()
    tx.create(r, b"t")
    tx.create(r + "/a")
    tx.set_data(r, b"u")
    tx.check(r, 1)
    results = tx.commit()
    assert not any(isinstance(x, Exception) for x in results), results
    tx = zk.transaction()
    tx.create(r + "/b")
    tx.delete(r + "/missing")
    results = tx.commit()
    assert type(results[1]).__name__ == "NoNodeError", results
    assert not zk.exists(r + "/b")


def t_acl(zk):
    r = root()
    owner = client(auth_data=[("digest", "alice:secret")])
    owner.create(r, b"private", acl=[make_digest_acl("alice", "secret", all=True)])
    try:
        zk.get(r)
        raise AssertionError("read without auth")
    except NoAuthError:
        pass
    assert owner.get(r)[0] == b"private"
    acls, stat = owner.get_acls(r)
    owner.set_acls(r, acls + [make_digest_acl("bob", "pw", read=True)], version=stat.aversion)
    bob = client(auth_data=[("digest", "bob:pw")])
    assert bob.get(r)[0] == b"private"
    owner.stop(); bob.stop()


def t_versions_and_errors(zk):
    r = root()
    zk.create(r + "/c", b"", makepath=True)
    try:
        zk.set(r + "/c", b"x", version=7)
        raise AssertionError("bad version accepted")
    except BadVersionError:
        pass
    try:
        zk.delete(r)
        raise AssertionError("non-empty delete accepted")
    except NotEmptyError:
        pass
    zk.delete(r, recursive=True)
    assert zk.exists(r) is None
    try:
        zk.get(r)
        raise AssertionError("missing node read")
    except NoNodeError:
        pass


def t_sequential_and_children_stat(zk):
    r = root()
    zk.create(r)
    names = [zk.create(r + "/s-", sequence=True) for _ in range(3)]
    assert names == sorted(names) and names[0].endswith("0000000000"), names
    children, stat = zk.get_children(r, include_data=True)
    assert stat.numChildren == 3 and sorted(children) == [n.rsplit("/", 1)[1] for n in names]


def t_session_expiry(zk):
    victim = client()
    r = root()
    victim.create(r, b"e", ephemeral=True)
    states = []
    victim.add_listener(lambda s: states.append(s))
    sid, pwd = victim.client_id
    # Another client on the same session closes it: the session is gone.
    thief = KazooClient(hosts=HOSTS, client_id=(sid, pwd), timeout=10)
    thief.start(timeout=TIMEOUT)
    thief.stop()
    wait_for(lambda: zk.exists(r) is None, "ephemeral removed with its session")
    wait_for(lambda: KazooState.LOST in states, "LOST state")
    victim.stop()


def t_ephemeral_cleanup_on_close(zk):
    r = root()
    c = client()
    c.create(r, ephemeral=True)
    assert zk.exists(r)
    c.stop(); c.close()
    assert zk.exists(r) is None


def t_reconnect(zk):
    c = client()
    r = root()
    c.create(r, b"1")
    sid = c.client_id[0]
    seen = []
    c.DataWatch(r, lambda d, s: seen.append(d))
    import socket as _socket
    c._connection._socket.shutdown(_socket.SHUT_RDWR)
    wait_for(lambda: c.state == KazooState.CONNECTED and c.client_id[0] == sid, "reconnect", 15)
    zk.set(r, b"2")
    wait_for(lambda: b"2" in seen, "watch after reconnect")
    c.stop()


def t_threads(zk):
    r = root()
    zk.create(r)
    errors = []

    def work(n):
        try:
            for i in range(20):
                zk.create(f"{r}/t{n}-{i}")
        except Exception as e:  # noqa
            errors.append(e)

    ts = [threading.Thread(target=work, args=(n,)) for n in range(5)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(TIMEOUT)
    assert not errors and len(zk.get_children(r)) == 100


SCENARIOS = [v for k, v in sorted(globals().items()) if k.startswith("t_")]


def main():
    zk = client()
    passed = failed = 0
    for s in SCENARIOS:
        started = time.time()
        try:
            s(zk)
            passed += 1
            print(f"ok   {s.__name__[2:]} ({time.time() - started:.1f}s)", flush=True)
        except Exception:
            failed += 1
            print(f"FAIL {s.__name__[2:]}", flush=True)
            traceback.print_exc()
    zk.stop()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
