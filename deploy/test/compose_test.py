#!/usr/bin/env python3
"""The deploy proof on a real Docker engine: deploy/compose/docker-compose.yml's three zkd
containers, driven from the host with zkcli and kazoo as a user would.

1. Build the image from this checkout (deploy/docker/build-image.sh, no network).
2. `up`, wait until every container's HEALTHCHECK (the readiness endpoint) says healthy.
3. Write 1,000 znodes: 500 through zkcli, 500 through kazoo.
4. Find the leader through /commands/leader, `docker stop` it, time until the survivors
   name a new leader; read all 1,000 back from each survivor; write more; `docker start`
   the old leader and read everything from it alone.
5. Disconnect the leader's container from the compose network: the majority elects a new
   leader and keeps taking writes, the cut-off member refuses them (zkcli inside its
   container) and reports not ready; reconnect it and read the majority's writes from it.
6. `down -v`, then check that no container, volume or network of the project is left.

Prints what it measured as text and as one JSON line (prefix `RESULT `); exits non-zero
on the first broken promise.

    deploy/test/compose_test.py [--zkcli target/release/zkcli] [--image TAG] [--no-build]
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMPOSE_FILE = os.path.join(ROOT, "deploy", "compose", "docker-compose.yml")
SERVICES = ["zoo1", "zoo2", "zoo3"]
# Generous: a stopped leader is replaced in about a second, a silently cut-off one after
# syncLimit x tickTime (4 s with the image's defaults). The measured times are printed.
FAILOVER_BOUND_S = 20
results = {}


def log(msg):
    print(f"[compose-test {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def fail(msg):
    raise SystemExit(f"compose-test FAILED: {msg}")


def run(args, check=True, timeout=300, env=None, stdin=None):
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, input=stdin)
    if check and p.returncode != 0:
        fail(f"{' '.join(args)} exited {p.returncode}\nstdout: {p.stdout[-2000:]}\nstderr: {p.stderr[-2000:]}")
    return p


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


class Ensemble:
    """The compose project, with host ports chosen free so the test runs beside anything."""

    def __init__(self, image):
        self.project = f"zkdtest{os.getpid()}"
        ports = free_ports(6)
        self.client = dict(zip(SERVICES, ports[:3]))
        self.admin = dict(zip(SERVICES, ports[3:]))
        self.env = dict(os.environ, ZKD_IMAGE=image, COMPOSE_PROJECT_NAME=self.project)
        for i, s in enumerate(SERVICES, 1):
            self.env[f"ZOO{i}_CLIENT_PORT"] = str(self.client[s])
            self.env[f"ZOO{i}_ADMIN_PORT"] = str(self.admin[s])
        if shutil.which("docker-compose"):
            self.compose_cmd = ["docker-compose"]
        else:
            self.compose_cmd = ["docker", "compose"]
        self.network = f"{self.project}_default"
        self.volumes = []

    def note_volumes(self):
        """Remembers the volumes of the project's containers, to check `down -v` removes them."""
        for s in SERVICES:
            out = run(["docker", "inspect", "-f",
                       "{{range .Mounts}}{{if .Name}}{{.Name}} {{end}}{{end}}", self.container(s)]).stdout
            self.volumes += [v for v in out.split() if v not in self.volumes]

    def compose(self, *args, check=True, timeout=300):
        return run(self.compose_cmd + ["-p", self.project, "-f", COMPOSE_FILE, *args],
                   check=check, timeout=timeout, env=self.env)

    def container(self, service):
        out = self.compose("ps", "-q", service).stdout.split()
        if not out:
            fail(f"no container for {service}")
        return out[0]

    def health(self, service):
        p = run(["docker", "inspect", "-f", "{{.State.Health.Status}}", self.container(service)],
                check=False)
        return p.stdout.strip()

    def admin_get(self, service, path, timeout=2.0):
        url = f"http://127.0.0.1:{self.admin[service]}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except (OSError, urllib.error.URLError):
            return None, ""

    def leader_view(self, service):
        status, body = self.admin_get(service, "/commands/leader")
        if status != 200:
            return None
        try:
            return json.loads(body)
        except ValueError:
            return None

    def ready(self, service):
        return self.admin_get(service, "/readyz")[0] == 200

    def hosts(self, services):
        return ",".join(f"127.0.0.1:{self.client[s]}" for s in services)


def wait_until(what, bound_s, predicate, step=0.05):
    start = time.monotonic()
    while True:
        v = predicate()
        if v:
            return v, time.monotonic() - start
        if time.monotonic() - start > bound_s:
            fail(f"{what}: not within {bound_s} s")
        time.sleep(step)


def kazoo(ens, services, timeout=30):
    zk = KazooClient(hosts=ens.hosts(services), timeout=10)
    zk.start(timeout=timeout)
    return zk


def check_tree(zk, expected, where):
    """All expected znodes are there with their values, and nothing else under /deploy."""
    zk.sync("/deploy")
    children = set(zk.get_children("/deploy"))
    want = set(expected)
    if children != want:
        fail(f"{where}: /deploy has {len(children)} children, {len(children - want)} unexpected, "
             f"{len(want - children)} missing")
    for name, value in expected.items():
        data, _ = zk.get(f"/deploy/{name}")
        if data != value:
            fail(f"{where}: /deploy/{name} is {data!r}, wrote {value!r}")
    log(f"{where}: all {len(expected)} znodes read back with their values")


def current_leader(ens, services):
    """The leader id all of `services` agree on, when they do."""
    views = [ens.leader_view(s) for s in services]
    ids = {v.get("leader_id") for v in views if v}
    if len(views) == len([v for v in views if v]) and len(ids) == 1:
        lid = ids.pop()
        if isinstance(lid, int) and lid > 0:
            return lid
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zkcli", default=os.path.join(ROOT, "target", "release", "zkcli"))
    ap.add_argument("--image", default="zkd:compose-test")
    ap.add_argument("--no-build", action="store_true", help="use --image as it is")
    args = ap.parse_args()

    if not args.no_build:
        t = time.monotonic()
        out = run([os.path.join(ROOT, "deploy", "docker", "build-image.sh"), args.image],
                  timeout=1800).stdout
        log(out.strip().splitlines()[-1] + f" in {time.monotonic() - t:.1f} s")
    size = int(run(["docker", "image", "inspect", "-f", "{{.Size}}", args.image]).stdout.strip())
    results["image_bytes"] = size
    if not os.access(args.zkcli, os.X_OK):
        fail(f"{args.zkcli} is not an executable (cargo build --release -p zkcli)")

    single(args.image, "ZOO_* variables", env={
        "ZOO_TICK_TIME": "2500", "ZOO_MAX_CLIENT_CNXNS": "77",
        "ZOO_CFG_EXTRA": "maxSessionTimeout=61000 minSessionTimeout=6000"},
        want={"tick_time": 2500, "max_client_cnxns": 77, "max_session_timeout": 61000,
              "min_session_timeout": 6000, "data_dir": "/data/version-2",
              "data_log_dir": "/datalog/version-2"})
    single(args.image, "a mounted /conf/zoo.cfg", conf=(
        "tickTime=1500\ndataDir=/data/mounted\nclientPort=2181\nmaxClientCnxns=9\n"),
        env={"ZOO_TICK_TIME": "4000"},
        want={"tick_time": 1500, "max_client_cnxns": 9, "data_dir": "/data/mounted/version-2"})
    ens = Ensemble(args.image)
    try:
        scenario(ens, args.zkcli)
    finally:
        teardown(ens)
    print("RESULT " + json.dumps(results, sort_keys=True), flush=True)
    log("passed")


def scenario(ens, zkcli):
    # --- up, and wait for every HEALTHCHECK ---------------------------------------------
    t0 = time.monotonic()
    ens.compose("up", "-d")
    _, took = wait_until("all three healthy", 180,
                         lambda: all(ens.health(s) == "healthy" for s in SERVICES), step=0.5)
    results["up_to_healthy_s"] = round(time.monotonic() - t0, 2)
    ens.note_volumes()
    if len(ens.volumes) < 3:
        fail(f"expected the image's volumes on every container, found {ens.volumes}")
    log(f"up: all three containers healthy {results['up_to_healthy_s']} s after `up`")

    # --- 1,000 znodes: 500 with zkcli, 500 with kazoo -----------------------------------
    expected = {}
    script = ["create /deploy"]
    for i in range(500):
        script.append(f"create /deploy/cli{i:04d} v{i}")
        expected[f"cli{i:04d}"] = f"v{i}".encode()
    p = run([zkcli, "-server", ens.hosts(SERVICES)], stdin="\n".join(script) + "\nquit\n",
            timeout=120)
    created = (p.stdout + p.stderr).count("Created /deploy/cli")
    if created != 500:
        fail(f"zkcli created {created} of 500 znodes\n{p.stdout[-1000:]}\n{p.stderr[-1000:]}")
    zk = kazoo(ens, SERVICES)
    for i in range(500):
        zk.create(f"/deploy/kz{i:04d}", f"k{i}".encode())
        expected[f"kz{i:04d}"] = f"k{i}".encode()
    zk.stop()
    zk.close()
    log("wrote 1,000 znodes: 500 through zkcli, 500 through kazoo")

    # --- stop the leader ----------------------------------------------------------------
    leader_id, _ = wait_until("the three agree on a leader", 30, lambda: current_leader(ens, SERVICES))
    leader = SERVICES[leader_id - 1]
    survivors = [s for s in SERVICES if s != leader]
    log(f"/commands/leader on every node names server.{leader_id} ({leader})")
    t_stop = time.monotonic()
    run(["docker", "stop", ens.container(leader)])
    stopped = time.monotonic() - t_stop

    def new_leader():
        lid = current_leader(ens, survivors)
        return lid if lid and lid != leader_id and all(ens.ready(s) for s in survivors) else None

    new_id, _ = wait_until("a new leader named by the survivors", FAILOVER_BOUND_S, new_leader,
                           step=0.02)
    results["stop_leader_to_new_leader_s"] = round(time.monotonic() - t_stop, 3)
    results["docker_stop_s"] = round(stopped, 3)
    log(f"docker stop {leader} took {stopped:.2f} s; survivors name server.{new_id} "
        f"{results['stop_leader_to_new_leader_s']} s after the stop began")
    for s in survivors:
        zk = kazoo(ens, [s])
        check_tree(zk, expected, f"survivor {s}")
        zk.stop()
        zk.close()
    zk = kazoo(ens, survivors)
    for i in range(100):
        zk.create(f"/deploy/after{i:03d}", f"a{i}".encode())
        expected[f"after{i:03d}"] = f"a{i}".encode()
    zk.stop()
    zk.close()
    log("wrote 100 more through the survivors")

    # --- start the old leader again -------------------------------------------------------
    t = time.monotonic()
    run(["docker", "start", ens.container(leader)])
    wait_until(f"{leader} ready again", 60, lambda: ens.ready(leader), step=0.1)
    results["restart_to_ready_s"] = round(time.monotonic() - t, 2)
    zk = kazoo(ens, [leader])
    check_tree(zk, expected, f"restarted {leader}")
    zk.stop()
    zk.close()
    wait_until("all three healthy after the restart", 60,
               lambda: all(ens.health(s) == "healthy" for s in SERVICES), step=0.5)

    # --- partition: cut the current leader off the compose network ------------------------
    leader_id, _ = wait_until("the three agree on a leader", 30, lambda: current_leader(ens, SERVICES))
    cut = SERVICES[leader_id - 1]
    majority = [s for s in SERVICES if s != cut]
    cut_container = ens.container(cut)
    log(f"disconnecting {cut} (the leader, server.{leader_id}) from {ens.network}")
    t = time.monotonic()
    run(["docker", "network", "disconnect", ens.network, cut_container])

    def majority_leader():
        lid = current_leader(ens, majority)
        return lid if lid and lid != leader_id and all(ens.ready(s) for s in majority) else None

    new_id, _ = wait_until("the majority elects a new leader", FAILOVER_BOUND_S, majority_leader,
                           step=0.02)
    results["partition_to_new_leader_s"] = round(time.monotonic() - t, 3)
    log(f"majority {majority} names server.{new_id} {results['partition_to_new_leader_s']} s after the cut")
    zk = kazoo(ens, majority)
    for i in range(100):
        zk.create(f"/deploy/split{i:03d}", f"s{i}".encode())
        expected[f"split{i:03d}"] = f"s{i}".encode()
    zk.stop()
    zk.close()
    log("the majority took 100 writes during the partition")

    # The cut-off member: not ready, and a write through it does not happen.
    _, took = wait_until(f"{cut} reports not ready", 30,
                         lambda: run(["docker", "exec", cut_container, "zkd", "probe", "ready"],
                                     check=False).returncode != 0, step=0.2)
    minority_write = run(
        ["docker", "exec", "-i", cut_container, "zkcli", "-timeout", "3000", "-server",
         "127.0.0.1:2181", "create", "/deploy/minority", "x"],
        check=False, timeout=60)
    if minority_write.returncode == 0 or "Created /deploy/minority" in minority_write.stdout:
        fail(f"the cut-off member took a write: {minority_write.stdout} {minority_write.stderr}")
    log(f"the cut-off member refuses the write (zkcli exit {minority_write.returncode}: "
        f"{(minority_write.stderr or minority_write.stdout).strip().splitlines()[-1:]})")

    t = time.monotonic()
    run(["docker", "network", "connect", "--alias", cut, ens.network, cut_container])
    wait_until(f"{cut} ready after the heal", 60, lambda: ens.ready(cut), step=0.1)
    results["heal_to_ready_s"] = round(time.monotonic() - t, 2)
    zk = kazoo(ens, [cut])
    check_tree(zk, expected, f"healed {cut}")
    if zk.exists("/deploy/minority"):
        fail("/deploy/minority exists after the heal")
    zk.stop()
    zk.close()
    for s in SERVICES:
        zk = kazoo(ens, [s])
        zk.sync("/deploy")
        n = len(zk.get_children("/deploy"))
        zk.stop()
        zk.close()
        if n != len(expected):
            fail(f"{s} has {n} children of /deploy after the heal, expected {len(expected)}")
    results["znodes_at_end"] = len(expected)
    log(f"healed: every member serves all {len(expected)} znodes")


def single(image, how, want, env=None, conf=None):
    """`docker run -p 2181 -p 8080` of one server configured by `how`; its /commands/conf
    shows the settings, it becomes healthy, and a kazoo client writes and reads."""
    client, admin = free_ports(2)
    name = f"zkdsingle{os.getpid()}"
    args = ["docker", "run", "-d", "--name", name, "-p", f"127.0.0.1:{client}:2181",
            "-p", f"127.0.0.1:{admin}:8080"]
    for k, v in (env or {}).items():
        args += ["-e", f"{k}={v}"]
    confdir = None
    if conf is not None:
        confdir = tempfile.mkdtemp()
        with open(os.path.join(confdir, "zoo.cfg"), "w") as f:
            f.write(conf)
        os.chmod(confdir, 0o755)
        args += ["-v", f"{confdir}:/conf:ro"]
    run(args + [image])
    try:
        t = time.monotonic()
        wait_until(f"single server ({how}) healthy", 60, lambda: run(
            ["docker", "inspect", "-f", "{{.State.Health.Status}}", name],
            check=False).stdout.strip() == "healthy", step=0.5)
        took = time.monotonic() - t
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/commands/conf", timeout=5) as r:
            conf_view = json.loads(r.read().decode())
        for k, v in want.items():
            if conf_view.get(k) != v:
                fail(f"single server ({how}): conf {k} is {conf_view.get(k)!r}, expected {v!r}")
        zk = KazooClient(hosts=f"127.0.0.1:{client}", timeout=10)
        zk.start(timeout=30)
        zk.create("/single", b"one")
        if zk.get("/single")[0] != b"one":
            fail(f"single server ({how}): read back differs")
        zk.stop()
        zk.close()
        user = run(["docker", "inspect", "-f", "{{.Config.User}}", name]).stdout.strip()
        if user != "1000:1000":
            fail(f"the image runs as {user!r}, not the zookeeper user 1000:1000")
        log(f"single server configured by {how}: healthy in {took:.1f} s, settings "
            f"applied, kazoo writes and reads, runs as uid 1000")
    finally:
        run(["docker", "rm", "-fv", name], check=False)
        if confdir:
            shutil.rmtree(confdir, ignore_errors=True)


def teardown(ens):
    ens.compose("down", "-v", "--remove-orphans", check=False, timeout=120)
    label = f"label=com.docker.compose.project={ens.project}"
    left = {
        "containers": run(["docker", "ps", "-aq", "--filter", label], check=False).stdout.split(),
        "volumes": run(["docker", "volume", "ls", "-q", "--filter", label], check=False).stdout.split(),
        "networks": run(["docker", "network", "ls", "-q", "--filter", label], check=False).stdout.split(),
    }
    # Anonymous volumes (the image's /data, /datalog, /logs) carry no project label: the
    # ones our containers had mounted must be gone.
    left["volumes"] += [v for v in ens.volumes
                        if run(["docker", "volume", "inspect", v], check=False).returncode == 0]
    leftovers = {k: v for k, v in left.items() if v}
    if leftovers:
        fail(f"`down -v` left {leftovers}")
    log("down -v: no container, volume or network of the project is left")


if __name__ == "__main__":
    sys.exit(main())
