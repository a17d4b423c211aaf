#!/usr/bin/env python3
"""kazoo's TreeCache on /w through a cut connection, driven by tests/tests/watch_catchup.rs
over stdin/stdout, line for line like tests/java/CacheCheck.java: READY once the cache is
initialized, LIVE-OK once it holds /w/live-9, DISCONNECTED when the connection is
suspended, then (after GO) RECONNECTED, and once no cache event has come for 3 s,
"EVENTS n", one "N path base64 version" line per cached node, and DONE.

    tree_cache_check.py HOST:PORT[,HOST:PORT...]
"""

import base64
import queue
import sys
import threading
import time

from kazoo.client import KazooClient, KazooState
from kazoo.recipe.cache import TreeCache, TreeEvent


def say(line):
    print(line, flush=True)


def main():
    states = queue.Queue()
    client = KazooClient(hosts=sys.argv[1], timeout=30.0, randomize_hosts=False,
                         connection_retry={"max_tries": -1, "delay": 0.1, "max_delay": 0.5})
    client.add_listener(states.put)
    client.start(timeout=30)
    events = [0]
    initialized = threading.Event()
    lock = threading.Lock()

    def on_event(e):
        if e.event_type == TreeEvent.INITIALIZED:
            initialized.set()
        elif e.event_type in (TreeEvent.NODE_ADDED, TreeEvent.NODE_UPDATED,
                              TreeEvent.NODE_REMOVED):
            with lock:
                events[0] += 1

    cache = TreeCache(client, "/w")
    cache.listen(on_event)
    cache.start()
    if not initialized.wait(60):
        raise SystemExit("the cache never initialized")
    say("READY")
    deadline = time.time() + 30
    while cache.get_data("/w/live-9") is None:
        if time.time() > deadline:
            raise SystemExit("the live changes never reached the cache")
        time.sleep(0.02)
    say("LIVE-OK")
    wait_for(states, KazooState.SUSPENDED)
    with lock:
        before = events[0]
    say("DISCONNECTED")
    if sys.stdin.readline().strip() != "GO":
        raise SystemExit("expected GO")
    wait_for(states, KazooState.CONNECTED)
    say("RECONNECTED")
    last = -1
    while True:
        with lock:
            now = events[0]
        if now == last:
            break
        last = now
        time.sleep(3)
    say(f"EVENTS {last - before}")
    todo = ["/w"]
    nodes = []
    while todo:
        path = todo.pop()
        d = cache.get_data(path)
        if d is None:
            continue
        nodes.append((path, d.data or b"", d.stat.version))
        for k in cache.get_children(path) or []:
            todo.append(f"{path}/{k}")
    for path, data, version in sorted(nodes):
        say(f"N {path} {base64.b64encode(data).decode()} {version}")
    say("DONE")
    cache.close()
    client.stop()
    client.close()


def wait_for(states, want):
    while True:
        s = states.get(timeout=60)
        if s == want:
            return


if __name__ == "__main__":
    main()
