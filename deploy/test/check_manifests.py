#!/usr/bin/env python3
"""Offline checks of deploy/k8s and deploy/systemd, for CI (no cluster, no systemd boot):

- every Kubernetes manifest validates strictly against the API schemas that
  kubernetes-validate (PyPI) bundles, for the oldest and newest versions we support;
- the kustomization lists files that exist, and what the StatefulSet refers to (the
  generated ConfigMap, the headless Service, the image) is there;
- the StatefulSet and zoo.cfg agree: one server line per replica, pod zk-N is
  server.(N+1) at zk-N.<service> (what `zkd --myid-from-ordinal` derives), the probes use
  the AdminServer's /readyz and /healthz, and the headless Service publishes pods that
  are not ready yet (members must find each other before any is ready);
- `zkd check-config` accepts the k8s and systemd sample configurations;
- `systemd-analyze verify` accepts the unit with no warning, and its offline security
  exposure stays at or under 2.0 (of 10).

    deploy/test/check_manifests.py --zkd target/debug/zkd
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
K8S = os.path.join(ROOT, "deploy", "k8s")
SYSTEMD = os.path.join(ROOT, "deploy", "systemd")
K8S_VERSIONS = ["1.29.0", "1.37.0"]
MAX_EXPOSURE_TENTHS = 20
problems = []
checked = []


def problem(msg):
    problems.append(msg)
    print(f"  FAIL {msg}", flush=True)


def ok(msg):
    checked.append(msg)
    print(f"  ok   {msg}", flush=True)


def run(args):
    return subprocess.run(args, capture_output=True, text=True, timeout=300)


def load_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def check_k8s(zkd):
    kust = load_docs(os.path.join(K8S, "kustomization.yaml"))[0]
    if kust.get("kind") != "Kustomization":
        problem("kustomization.yaml is not a Kustomization")
    resources = kust.get("resources", [])
    for r in resources:
        if not os.path.isfile(os.path.join(K8S, r)):
            problem(f"kustomization lists {r}, which does not exist")
    manifests = sorted(f for f in os.listdir(K8S) if f.endswith(".yaml") and f != "kustomization.yaml")
    if sorted(resources) != manifests:
        problem(f"kustomization resources {sorted(resources)} differ from the manifests {manifests}")
    for version in K8S_VERSIONS:
        p = run(["kubernetes-validate", "--strict", "--quiet", "-k", version,
                 *[os.path.join(K8S, r) for r in resources]])
        if p.returncode != 0:
            problem(f"kubernetes-validate {version}: {p.stdout}{p.stderr}")
        else:
            ok(f"{len(resources)} manifests validate strictly against Kubernetes {version}")

    objects = [d for r in resources for d in load_docs(os.path.join(K8S, r))]
    by_kind = {}
    for o in objects:
        by_kind.setdefault(o["kind"], []).append(o)
    sts = by_kind["StatefulSet"][0]
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    services = {s["metadata"]["name"]: s for s in by_kind.get("Service", [])}

    headless = services.get(spec["serviceName"])
    if not headless or headless["spec"].get("clusterIP") != "None":
        problem(f"serviceName {spec['serviceName']} is not a headless Service in the manifests")
    elif not headless["spec"].get("publishNotReadyAddresses"):
        problem("the headless Service must publish not-ready pods, or no member ever finds a quorum")
    else:
        ok(f"headless Service {spec['serviceName']} publishes not-ready members")

    generated = {g["name"]: g for g in kust.get("configMapGenerator", [])}
    conf_volumes = [v for v in pod.get("volumes", []) if "configMap" in v]
    for v in conf_volumes:
        name = v["configMap"]["name"]
        if name not in generated:
            problem(f"volume {v['name']} needs ConfigMap {name}, which the kustomization does not generate")
        for f in generated.get(name, {}).get("files", []):
            if not os.path.isfile(os.path.join(K8S, f)):
                problem(f"configMapGenerator {name} reads {f}, which does not exist")
    images = {i["name"] for i in kust.get("images", [])}
    if container["image"].split(":")[0] not in images:
        problem(f"the kustomization's images do not cover {container['image']}")

    pdbs = by_kind.get("PodDisruptionBudget", [])
    labels = spec["selector"]["matchLabels"]
    if not any(p["spec"]["selector"]["matchLabels"] == labels for p in pdbs):
        problem("no PodDisruptionBudget selects the StatefulSet's pods")
    else:
        ok("a PodDisruptionBudget covers the members")
    if not container.get("resources", {}).get("requests"):
        problem("the container has no resource requests")
    if not spec.get("volumeClaimTemplates"):
        problem("the StatefulSet has no persistent volume claims")

    probes = {k: container.get(k, {}).get("httpGet", {}) for k in ("readinessProbe", "livenessProbe")}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    if probes["readinessProbe"].get("path") != "/readyz" or probes["livenessProbe"].get("path") != "/healthz":
        problem(f"probes should be /readyz (ready) and /healthz (alive): {probes}")

    # zoo.cfg: one server line per replica, named for the pods, ids from the ordinals.
    cfg_path = os.path.join(K8S, "zoo.cfg")
    cfg = {}
    for line in open(cfg_path):
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            cfg[k.strip()] = v.strip()
    if "--myid-from-ordinal" not in container.get("command", []) + container.get("args", []):
        problem("zkd is not started with --myid-from-ordinal")
    offset = 1
    servers = {int(k.split(".", 1)[1]): v for k, v in cfg.items() if re.fullmatch(r"server\.\d+", k)}
    want = {i + offset: f"{sts['metadata']['name']}-{i}.{spec['serviceName']}" for i in range(spec["replicas"])}
    got = {n: v.split(":", 1)[0] for n, v in servers.items()}
    if got != want:
        problem(f"zoo.cfg's servers {got} do not match the replicas {want}")
    else:
        ok(f"zoo.cfg names the {spec['replicas']} pods, server.N = ordinal + {offset}")
    for n, v in servers.items():
        quorum_port = int(v.split(":")[1])
        if quorum_port != ports.get("quorum"):
            problem(f"server.{n}'s quorum port {quorum_port} is not the container's quorum port")
    if int(cfg.get("admin.serverPort", "8080")) != ports.get("admin"):
        problem("the probes' admin port is not zoo.cfg's admin.serverPort")
    if int(cfg.get("clientPort", "2181")) != ports.get("client"):
        problem("the client port is not zoo.cfg's clientPort")
    check_config(zkd, cfg_path)


def check_config(zkd, path):
    p = run([zkd, "check-config", path])
    if p.returncode != 0:
        problem(f"zkd check-config {path}: {p.stdout}{p.stderr}")
    elif "note:" in p.stdout:
        problem(f"zkd check-config {path} notes unused keys: {p.stdout}")
    else:
        ok(f"zkd check-config accepts {os.path.relpath(path, ROOT)}")


def check_systemd(zkd):
    unit = open(os.path.join(SYSTEMD, "zkd.service")).read()
    m = re.search(r"^ExecStart=(\S+)", unit, re.M)
    if not m:
        problem("zkd.service has no ExecStart")
        return
    with tempfile.TemporaryDirectory() as d:
        # verify wants the executable to exist: point the copy at the binary just built.
        copy = os.path.join(d, "zkd.service")
        with open(copy, "w") as f:
            f.write(unit.replace(m.group(1), os.path.abspath(zkd)))
        p = run(["systemd-analyze", "verify", copy])
        if p.returncode != 0 or p.stderr.strip():
            problem(f"systemd-analyze verify: {p.stdout}{p.stderr}")
        else:
            ok("systemd-analyze verify accepts zkd.service")
        p = run(["systemd-analyze", "security", "--offline=yes",
                 f"--threshold={MAX_EXPOSURE_TENTHS}", copy])
        level = re.search(r"Overall exposure level for \S+: ([\d.]+)", p.stdout)
        if p.returncode != 0 or not level:
            problem(f"systemd-analyze security: exposure above {MAX_EXPOSURE_TENTHS / 10}: {p.stdout[-600:]}{p.stderr}")
        else:
            ok(f"zkd.service exposure {level.group(1)} (systemd-analyze security; 0 best, 10 worst)")
    if not re.search(r"^User=(?!root)\S+", unit, re.M):
        problem("zkd.service must run as a dedicated user")
    check_config(zkd, os.path.join(SYSTEMD, "zoo.cfg"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zkd", default=os.path.join(ROOT, "target", "debug", "zkd"))
    args = ap.parse_args()
    print("deploy manifests:", flush=True)
    check_k8s(args.zkd)
    check_systemd(args.zkd)
    print(f"deploy manifests: {len(checked)} checks passed, {len(problems)} failed", flush=True)
    return 1 if problems or not checked else 0


if __name__ == "__main__":
    sys.exit(main())
