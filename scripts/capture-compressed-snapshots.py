#!/usr/bin/env python3
"""Produce real Apache ZooKeeper data directories whose snapshots are compressed.

ZooKeeper 3.6+ compresses snapshots when the Java system property
`zookeeper.snapshot.compression.method` is `gz` (java.util.zip.GZIPOutputStream, files
`snapshot.<zxid>.gz`) or `snappy` (xerial snappy-java's SnappyOutputStream, files
`snapshot.<zxid>.snappy`). For each method this script runs the same workload as
`scripts/capture-datadir.py` (imported from it, so the zxids, paths, data and versions are
those of the uncompressed capture), restarts ZooKeeper so it writes a snapshot of
everything, and copies `version-2/` to `OUT_ROOT/zookeeper-3.8-<method>/version-2`
(default OUT_ROOT: `tests/data`). `preAllocSize=64` keeps the txn logs at 64 KiB.

Tests (`tests/tests/zookeeper_compression.rs`) recover these directories with zk-log and
compare with the uncompressed capture.

Usage: python3 scripts/capture-compressed-snapshots.py [OUT_ROOT]
"""
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("capture_datadir", os.path.join(HERE, "capture-datadir.py"))
cap = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cap)

METHODS = ("gz", "snappy")


def start(conf, logdir, method):
    flags = ("-Dzookeeper.extendedTypesEnabled=true "
             f"-Dzookeeper.snapshot.compression.method={method}")
    env = dict(os.environ, ZOO_LOG_DIR=logdir, SERVER_JVMFLAGS=flags)
    return subprocess.Popen(
        [cap.ZK_SERVER, "start-foreground", conf],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def capture(method, out):
    work = tempfile.mkdtemp(prefix=f"zkcap-{method}-")
    port = cap.free_port()
    data = os.path.join(work, "data")
    os.makedirs(data)
    conf = os.path.join(work, "zoo.cfg")
    with open(conf, "w") as f:
        f.write(f"tickTime=2000\ndataDir={data}\nclientPort={port}\nclientPortAddress=127.0.0.1\n"
                "admin.enableServer=false\n4lw.commands.whitelist=*\npreAllocSize=64\n"
                "snapCount=1000000\n")
    proc = start(conf, work, method)
    try:
        cap.wait_ready(port)
        client = cap.workload(port)
        time.sleep(0.5)
    finally:
        cap.stop(proc)
    _ = client
    # The restart loads the log and writes a compressed snapshot of everything.
    proc = start(conf, work, method)
    try:
        cap.wait_ready(port)
        time.sleep(1)
    finally:
        cap.stop(proc)
    src = os.path.join(data, "version-2")
    names = sorted(os.listdir(src))
    if not any(n.startswith("snapshot.") and n.endswith("." + method) for n in names):
        raise RuntimeError(f"ZooKeeper wrote no .{method} snapshot: {names} (see {work})")
    if os.path.exists(out):
        shutil.rmtree(out)
    shutil.copytree(src, out)
    shutil.rmtree(work)
    for name in sorted(os.listdir(out)):
        print(os.path.join(out, name), os.path.getsize(os.path.join(out, name)))


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "tests", "data")
    for method in METHODS:
        capture(method, os.path.join(root, f"zookeeper-3.8-{method}", "version-2"))


if __name__ == "__main__":
    main()
