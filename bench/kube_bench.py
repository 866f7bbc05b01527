#!/usr/bin/env python3
"""kiln's Kubernetes executor through tests/kube-sim, with a baseline in the
same run.  Usage: bench/bench_kube.sh [KILN_BIN]  (env: TASKS, CHAINS, QPS)

Two DAGs of TASKS one-step pods (default 1,000), every command `true`:
  fan    TASKS independent tasks: pods created per second (first to last
         create, as a watcher sees the ADDED events) and the run's wall.
  chain  CHAINS chains (default 4) of TASKS/CHAINS tasks: for every task with
         an upstream, the time from its upstream pod's Succeeded event to its
         own pod's ADDED event, both seen by one independent watcher on one
         watch stream (so delivery delays cancel out): the hand-off kiln adds.
Baseline, same sim, same shapes: a minimal controller in Python (one watch,
and on Succeeded it POSTs the next pod of the chain; for fan it POSTs all
pods from 8 threads as fast as the sim takes them and, like kiln, reads each
succeeded pod's log and deletes it, from 4 threads).  Also reported:
kiln's watch connections (opened, per namespace) from its own debug log,
and every request kiln made by kind, from the sim's counters (no per-pod
polling: GETs of single pods should be zero).
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
KILN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(SRC, "kiln")
TASKS = int(os.environ.get("TASKS", "1000"))
CHAINS = int(os.environ.get("CHAINS", "4"))
QPS = os.environ.get("QPS", "1000")


def http(server, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server + path, data=data, method=method)
    if data:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as r:
        raw = r.read()
        return json.loads(raw) if raw else None


def http_raw(server, path):
    with urllib.request.urlopen(server + path, timeout=60) as r:
        return r.read()


class Watcher(threading.Thread):
    """Records when each pod was ADDED and when it turned Succeeded."""

    def __init__(self, server, selector):
        super().__init__(daemon=True)
        self.server, self.selector = server, selector
        self.added, self.succeeded, self.labels = {}, {}, {}
        self.ready = threading.Event()

    def run(self):
        body = http(self.server, "GET", "/api/v1/namespaces/default/pods")
        rv = body["metadata"]["resourceVersion"]
        url = (f"{self.server}/api/v1/namespaces/default/pods?watch=1&resourceVersion={rv}"
               f"&labelSelector={urllib.request.quote(self.selector, safe='')}")
        with urllib.request.urlopen(url, timeout=3600) as r:
            self.ready.set()
            for line in r:
                t = time.monotonic()
                ev = json.loads(line)
                o = ev.get("object", {})
                name = o.get("metadata", {}).get("name")
                if not name:
                    continue
                if ev["type"] == "ADDED":
                    self.added.setdefault(name, t)
                    self.labels[name] = o["metadata"].get("labels", {})
                if o.get("status", {}).get("phase") == "Succeeded":
                    self.succeeded.setdefault(name, t)


def start_sim(work):
    pf = os.path.join(work, "port")
    p = subprocess.Popen([sys.executable, os.path.join(SRC, "tests/kube-sim/kube-sim.py"), "--port", "0",
                          "--port-file", pf, "--nodes", "50", "--node-cpu", "1000",
                          "--node-memory", "1000Gi"],
                         stdout=open(os.path.join(work, "sim.log"), "w"), stderr=subprocess.STDOUT)
    while not (os.path.exists(pf) and open(pf).read().strip()):
        time.sleep(0.05)
    return p, "http://127.0.0.1:" + open(pf).read().strip()


def handoffs(w, pairs):
    out = []
    for up, down in pairs:
        if up in w.succeeded and down in w.added:
            out.append((w.added[down] - w.succeeded[up]) * 1000)
    return out


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))] if v else float("nan")


def run_kiln(work, server, sim_stats_before):
    home, dags = os.path.join(work, "home"), os.path.join(work, "dags")
    os.makedirs(home)
    os.makedirs(dags)
    kc = os.path.join(work, "kubeconfig")
    open(kc, "w").write(f"""apiVersion: v1
kind: Config
clusters: [{{name: s, cluster: {{server: "{server}"}}}}]
users: [{{name: u, user: {{}}}}]
contexts: [{{name: s, context: {{cluster: s, user: u}}}}]
current-context: s
""")
    per = TASKS // CHAINS
    fan = "dag: kfan\ndefault:\n  executor: kubernetes\n  kubernetes: {image: busybox}\ntasks:\n" + "".join(
        f"  t{i}: {{command: ['true']}}\n" for i in range(TASKS))
    chain = "dag: kchain\ndefault:\n  executor: kubernetes\n  kubernetes: {image: busybox}\ntasks:\n" + "".join(
        f"  c{c}_{i}: {{command: ['true']" + (f", deps: [c{c}_{i - 1}]" if i else "") + "}\n"
        for c in range(CHAINS) for i in range(per))
    open(os.path.join(dags, "kfan.yaml"), "w").write(fan)
    open(os.path.join(dags, "kchain.yaml"), "w").write(chain)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
    env.update(KILN_HOME=home, KILN_DAGS=dags, KILN_PORT="0", KUBECONFIG=kc, KILN_PARALLELISM="2000",
               KILN_KUBE_CREATE_QPS=QPS, KILN_LOG_LEVEL="debug", KILN_KUBE_GPUS="0")
    log = open(os.path.join(work, "kiln.log"), "w")
    d = subprocess.Popen([KILN, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    while not os.path.exists(os.path.join(home, "instance")):
        time.sleep(0.05)
    time.sleep(1.5)
    inst = open(os.path.join(home, "instance")).read().strip()
    res = {}
    for dag in ("kfan", "kchain"):
        w = Watcher(server, f"kiln.io/instance={inst},kiln.io/dag={dag}")
        w.start()
        w.ready.wait()
        t0 = time.monotonic()
        out = subprocess.run([KILN, "dags", "trigger", dag, "--wait"], env=env, capture_output=True,
                             text=True, timeout=1800)
        wall = time.monotonic() - t0
        ok = out.returncode == 0
        adds = sorted(w.added.values())
        if dag == "kfan":
            res["fan"] = dict(ok=ok, wall=wall, pods=len(adds),
                              rate=(len(adds) - 1) / (adds[-1] - adds[0]) if len(adds) > 1 else 0)
        else:
            name = {}
            for n, lab in w.labels.items():
                name[lab.get("kiln.io/task")] = n
            pairs = [(name.get(f"c{c}_{i - 1}"), name.get(f"c{c}_{i}"))
                     for c in range(CHAINS) for i in range(1, per)]
            h = handoffs(w, pairs)
            res["chain"] = dict(ok=ok, wall=wall, samples=len(h), median=statistics.median(h) if h else
                                float("nan"), p90=pct(h, 0.9), p99=pct(h, 0.99))
    d.terminate()
    d.wait()
    text = open(os.path.join(work, "kiln.log")).read()
    res["watches_opened"] = text.count("kubernetes: watching namespace")
    res["namespaces"] = len({l.split("watching namespace ")[1].split()[0]
                             for l in text.splitlines() if "watching namespace " in l})
    stats = http(server, "GET", "/_sim/stats")
    res["requests"] = {k: stats.get(k, 0) - sim_stats_before.get(k, 0) for k in stats
                       if isinstance(stats.get(k), int) and k not in ("resourceVersion", "pods")}
    return res


def run_baseline(server):
    """A minimal controller: create pods; on Succeeded create the next."""
    per = TASKS // CHAINS
    pod = lambda name, dag, task: {"apiVersion": "v1", "kind": "Pod",
                                   "metadata": {"name": name, "labels": {"bench": "base", "kiln.io/dag": dag,
                                                                         "kiln.io/task": task}},
                                   "spec": {"restartPolicy": "Never",
                                            "containers": [{"name": "main", "image": "busybox",
                                                            "command": ["true"]}]}}
    res = {}
    # fan: as fast as the sim takes them, 8 threads; like kiln, every pod's
    # log is read and the pod deleted once it has succeeded.
    w = Watcher(server, "bench=base,kiln.io/dag=bfan")
    w.start()
    w.ready.wait()
    t0 = time.monotonic()
    collected = set()

    def collect():
        with ThreadPoolExecutor(4) as ex:
            while len(collected) < TASKS and time.monotonic() - t0 < 600:
                for n in [n for n in list(w.succeeded) if n not in collected]:
                    collected.add(n)
                    ex.submit(lambda n=n: (http_raw(server, f"/api/v1/namespaces/default/pods/{n}/log?timestamps=true"),
                                           http(server, "DELETE", f"/api/v1/namespaces/default/pods/{n}")))
                time.sleep(0.01)

    col = threading.Thread(target=collect, daemon=True)
    col.start()
    with ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda i: http(server, "POST", "/api/v1/namespaces/default/pods",
                                   pod(f"bfan-{i}", "bfan", f"t{i}")), range(TASKS)))
    col.join(600)
    adds = sorted(w.added.values())
    res["fan"] = dict(wall=time.monotonic() - t0, pods=len(adds),
                      rate=(len(adds) - 1) / (adds[-1] - adds[0]) if len(adds) > 1 else 0)
    # chain: its own watch; on Succeeded of cX_i, create cX_{i+1}
    w2 = Watcher(server, "bench=base,kiln.io/dag=bchain")
    w2.start()
    w2.ready.wait()
    done = threading.Event()
    body = http(server, "GET", "/api/v1/namespaces/default/pods")
    rv = body["metadata"]["resourceVersion"]

    def controller():
        url = (f"{server}/api/v1/namespaces/default/pods?watch=1&resourceVersion={rv}"
               "&labelSelector=" + urllib.request.quote("bench=base,kiln.io/dag=bchain", safe=""))
        seen = set()
        finished = 0
        with urllib.request.urlopen(url, timeout=3600) as r:
            for line in r:
                ev = json.loads(line)
                o = ev["object"]
                n = o["metadata"]["name"]
                if o.get("status", {}).get("phase") == "Succeeded" and n not in seen:
                    seen.add(n)
                    c, i = map(int, n.split("-")[1:])
                    if i + 1 < per:
                        http(server, "POST", "/api/v1/namespaces/default/pods",
                             pod(f"bchain-{c}-{i + 1}", "bchain", f"c{c}_{i + 1}"))
                    finished += 1
                    if finished == per * CHAINS:
                        done.set()
                        return

    th = threading.Thread(target=controller, daemon=True)
    th.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    for c in range(CHAINS):
        http(server, "POST", "/api/v1/namespaces/default/pods", pod(f"bchain-{c}-0", "bchain", f"c{c}_0"))
    done.wait(1800)
    wall = time.monotonic() - t0
    pairs = [(f"bchain-{c}-{i - 1}", f"bchain-{c}-{i}") for c in range(CHAINS) for i in range(1, per)]
    h = handoffs(w2, pairs)
    res["chain"] = dict(wall=wall, samples=len(h), median=statistics.median(h) if h else float("nan"),
                        p90=pct(h, 0.9), p99=pct(h, 0.99))
    return res


def main():
    work = tempfile.mkdtemp(prefix="kiln-bench-kube.")
    sim, server = start_sim(work)
    try:
        before = http(server, "GET", "/_sim/stats")
        k = run_kiln(work, server, before)
        http(server, "POST", "/_sim/reset", {})
        b = run_baseline(server)
    finally:
        sim.terminate()
        sim.wait()
    per = TASKS // CHAINS
    print(f"kube-sim, {TASKS} one-step pods (`true`); kiln create limit {QPS}/s; work {work}")
    print(f"fan   {TASKS} independent:   kiln {k['fan']['rate']:7.1f} pods/s (wall {k['fan']['wall']:.1f} s, "
          f"ok={k['fan']['ok']})   baseline {b['fan']['rate']:7.1f} pods/s (wall {b['fan']['wall']:.1f} s)"
          f"   ratio kiln/baseline {k['fan']['rate'] / b['fan']['rate']:.2f}")
    kc, bc = k["chain"], b["chain"]
    print(f"chain {CHAINS} x {per}: Succeeded -> downstream create (ms): kiln median {kc['median']:.2f} "
          f"p90 {kc['p90']:.2f} p99 {kc['p99']:.2f} (n={kc['samples']}, wall {kc['wall']:.1f} s, ok={kc['ok']})")
    print(f"      baseline controller median {bc['median']:.2f} p90 {bc['p90']:.2f} p99 {bc['p99']:.2f} "
          f"(n={bc['samples']}, wall {bc['wall']:.1f} s)   ratio kiln/baseline median "
          f"{kc['median'] / bc['median']:.2f}")
    print(f"kiln watch connections: {k['watches_opened']} opened over {k['namespaces']} namespace(s)")
    print(f"kiln requests seen by the sim: {json.dumps(k['requests'])}")
    target = kc["median"] < 5
    print(f"target: median hand-off < 5 ms: {'met' if target else 'NOT met'}")


if __name__ == "__main__":
    main()
