#!/usr/bin/env python3
"""End-to-end tests of kiln's Kubernetes executor, printing TAP.

One suite for every cluster:
  - by default it starts tests/kube-sim (CI);
  - with KUBECONFIG set it runs unchanged against that cluster: the real
    kube-apiserver of shared/k8s with tests/kube-sim/sim-kubelet.py (see
    tests/kube-sim/real-apiserver.sh), or any cluster.  E2E_IMAGE names an
    image with a POSIX shell (default busybox:1.36); E2E_NAMESPACE the
    namespace (default: the context's).
Fault injection that only a stand-in can do (dropped watches, forced 410) is
skipped against a real server, with the reason.

What it shows: the example pipeline end to end (outputs, logs, pods deleted);
every failure reason (exit code, OOMKilled, image pull with the separate
infrastructure retry budget, unschedulable after the pending timeout,
timeout, eviction, node lost, pod deleted behind kiln's back); adoption after
kill -9 of the daemon mid-run and while it is down (no duplicate pod, no lost
result, logs complete); a 410 and dropped watches survived with no missed
completion; GPU steps queued in kiln's gpu pool instead of Pending pods.
"""
import json
import os
import re
import shutil
import signal
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
KILN = os.environ.get("KILN_BIN") or os.path.join(SRC, "kiln")
IMAGE = os.environ.get("E2E_IMAGE", "busybox:1.36")

n_tests = 0
n_failed = 0


def ok(cond, desc, detail=None):
    global n_tests, n_failed
    n_tests += 1
    if cond:
        print(f"ok {n_tests} - {desc}", flush=True)
    else:
        n_failed += 1
        print(f"not ok {n_tests} - {desc}", flush=True)
        if detail is not None:
            for line in str(detail).splitlines()[:20]:
                print(f"#   {line}", flush=True)


def skip(desc, why):
    global n_tests
    n_tests += 1
    print(f"ok {n_tests} - {desc} # SKIP {why}", flush=True)


def diag(msg):
    print(f"# {msg}", flush=True)


# ---- the cluster ------------------------------------------------------------

class Cluster:
    """Just enough of the API for the checks: get, list, delete, patch
    status, and a watch that records every pod this instance creates."""

    def __init__(self, server, token=None, ca=None, insecure=False, namespace="default",
                 is_sim=False):
        self.server = server.rstrip("/")
        self.token = token
        self.ns = namespace
        self.is_sim = is_sim
        self.ctx = None
        if self.server.startswith("https"):
            self.ctx = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
            if insecure:
                self.ctx.check_hostname = False
                self.ctx.verify_mode = ssl.CERT_NONE

    def request(self, method, path, body=None, ctype="application/json", timeout=30):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", ctype)
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self.ctx) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, None

    def pods(self, selector):
        code, body = self.request("GET", f"/api/v1/namespaces/{self.ns}/pods?labelSelector="
                                  + urllib.request.quote(selector, safe=""))
        return body.get("items", []) if code == 200 and body else []

    def delete_pod(self, name, grace=0):
        return self.request("DELETE", f"/api/v1/namespaces/{self.ns}/pods/{name}"
                            f"?gracePeriodSeconds={grace}")[0]

    def patch_status(self, name, status):
        return self.request("PATCH", f"/api/v1/namespaces/{self.ns}/pods/{name}/status",
                            {"status": status}, ctype="application/merge-patch+json")[0]

    def sim_fault(self, fault):
        return self.request("POST", "/_sim/faults", fault)[0]


class PodWatch(threading.Thread):
    """Records every pod ADDED under a selector (names, and how many pods of
    each (run, task, try) were ever created) and the most pods of a DAG that
    existed unfinished at once."""

    def __init__(self, cluster, selector):
        super().__init__(daemon=True)
        self.c = cluster
        self.selector = selector
        self.created = {}           # name -> labels
        self.live = {}              # name -> phase
        self.max_live = {}          # dag label -> max unfinished pods at once
        self.stop = False
        self.lock = threading.Lock()

    def run(self):
        rv = ""
        while not self.stop:
            try:
                code, body = self.c.request("GET", f"/api/v1/namespaces/{self.c.ns}/pods?labelSelector="
                                            + urllib.request.quote(self.selector, safe=""))
                rv = body["metadata"]["resourceVersion"]
                for p in body.get("items", []):
                    self.seen("ADDED", p)
                path = (f"/api/v1/namespaces/{self.c.ns}/pods?watch=1&resourceVersion={rv}"
                        f"&timeoutSeconds=30&labelSelector=" + urllib.request.quote(self.selector, safe=""))
                req = urllib.request.Request(self.c.server + path)
                if self.c.token:
                    req.add_header("Authorization", "Bearer " + self.c.token)
                with urllib.request.urlopen(req, timeout=60, context=self.c.ctx) as r:
                    for line in r:
                        if self.stop:
                            return
                        ev = json.loads(line)
                        if ev.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                            self.seen(ev["type"], ev["object"])
            except Exception:
                time.sleep(0.2)

    def seen(self, typ, pod):
        name = pod["metadata"]["name"]
        labels = pod["metadata"].get("labels", {})
        phase = pod.get("status", {}).get("phase", "Pending")
        with self.lock:
            self.created.setdefault(name, labels)
            if typ == "DELETED" or phase in ("Succeeded", "Failed"):
                self.live.pop(name, None)
            else:
                self.live[name] = labels.get("kiln.io/dag", "")
            per = {}
            for d in self.live.values():
                per[d] = per.get(d, 0) + 1
            for d, k in per.items():
                self.max_live[d] = max(self.max_live.get(d, 0), k)

    def created_for(self, dag):
        with self.lock:
            return {n: l for n, l in self.created.items() if l.get("kiln.io/dag") == dag}


def start_sim(work):
    port_file = os.path.join(work, "sim.port")
    log = open(os.path.join(work, "sim.log"), "w")
    p = subprocess.Popen([sys.executable, os.path.join(SRC, "tests/kube-sim/kube-sim.py"),
                          "--port", "0", "--port-file", port_file, "--nodes", "2",
                          "--node-gpus", "1", "--bookmark-interval", "1"],
                         stdout=log, stderr=subprocess.STDOUT)
    for _ in range(100):
        if os.path.exists(port_file) and open(port_file).read().strip():
            break
        time.sleep(0.05)
    port = open(port_file).read().strip()
    server = f"http://127.0.0.1:{port}"
    kc = os.path.join(work, "kubeconfig")
    with open(kc, "w") as f:
        f.write(f"""apiVersion: v1
kind: Config
clusters: [{{name: sim, cluster: {{server: "{server}"}}}}]
users: [{{name: e2e, user: {{}}}}]
contexts: [{{name: sim, context: {{cluster: sim, user: e2e, namespace: default}}}}]
current-context: sim
""")
    return p, kc, Cluster(server, is_sim=True)


def cluster_from_kubeconfig(path):
    import yaml
    with open(path) as f:
        cfg = yaml.safe_load(f)
    cur = cfg.get("current-context")
    ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == cur)
    cl = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
    user = next((u["user"] for u in cfg.get("users", []) if u["name"] == ctx.get("user")), {})
    base = os.path.dirname(os.path.abspath(path))
    ca = cl.get("certificate-authority")
    if ca and not os.path.isabs(ca):
        ca = os.path.join(base, ca)
    if cl.get("certificate-authority-data"):
        import base64
        ca = os.path.join(tempfile.mkdtemp(), "ca.crt")
        with open(ca, "wb") as f:
            f.write(base64.b64decode(cl["certificate-authority-data"]))
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = open(user["tokenFile"]).read().strip()
    ns = os.environ.get("E2E_NAMESPACE") or ctx.get("namespace") or "default"
    c = Cluster(cl["server"], token=token, ca=ca, insecure=cl.get("insecure-skip-tls-verify", False),
                namespace=ns)
    # kube-sim answers /_sim/stats; a real server does not.
    code, _ = c.request("GET", "/_sim/stats")
    c.is_sim = code == 200
    return c


# ---- kiln -------------------------------------------------------------------

class Kiln:
    def __init__(self, work, name, kubeconfig, cluster, **settings):
        self.home = os.path.join(work, name, "home")
        self.dags = os.path.join(work, name, "dags")
        os.makedirs(self.home)
        os.makedirs(self.dags)
        self.log_path = os.path.join(work, name, "daemon.log")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
        self.env.update({"KILN_HOME": self.home, "KILN_DAGS": self.dags, "KILN_PORT": "0",
                         "KUBECONFIG": kubeconfig, "KILN_KUBE_NAMESPACE": cluster.ns,
                         "KILN_SHEPHERD_IDLE_MS": "1000"})
        for k, v in settings.items():
            self.env["KILN_" + k.upper()] = str(v)
        self.proc = None

    def write_dag(self, name, text):
        with open(os.path.join(self.dags, name + ".yaml"), "w") as f:
            f.write(text.replace("IMAGE", IMAGE))

    def start(self):
        self.proc = subprocess.Popen([KILN, "serve"], env=self.env,
                                     stdout=open(self.log_path, "a"), stderr=subprocess.STDOUT)
        sock = os.path.join(self.home, "daemon.sock")
        for _ in range(200):
            if os.path.exists(sock):
                return
            time.sleep(0.05)
        raise RuntimeError("daemon did not start: " + self.daemon_log()[-2000:])

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def cli(self, *args):
        return subprocess.run([KILN, *args], env=self.env, capture_output=True, text=True,
                              timeout=60)

    def trigger(self, dag):
        r = self.cli("dags", "trigger", dag, "-o", "json")
        if r.returncode != 0:
            r = self.cli("dags", "trigger", dag)
        m = re.search(r'"run_id"\s*:\s*"([^"]+)"', r.stdout) or re.search(r"(manual__\S+)", r.stdout)
        if not m:
            raise RuntimeError(f"trigger {dag}: {r.stdout} {r.stderr}")
        return m.group(1)

    def db(self):
        c = sqlite3.connect(os.path.join(self.home, "kiln.db"), timeout=10)
        c.row_factory = sqlite3.Row
        return c

    def run_state(self, dag, run_id):
        with self.db() as c:
            r = c.execute("SELECT state FROM runs WHERE dag_id=? AND run_id=?", (dag, run_id)).fetchone()
            return r["state"] if r else None

    def wait_run(self, dag, run_id, timeout=90):
        end = time.time() + timeout
        while time.time() < end:
            st = self.run_state(dag, run_id)
            if st in ("success", "failed"):
                return st
            time.sleep(0.1)
        return self.run_state(dag, run_id)

    def tasks(self, dag, run_id):
        with self.db() as c:
            rows = c.execute(
                "SELECT ti.task_id, ti.state, ti.reason, ti.try_number, ti.id FROM task_instances ti "
                "JOIN runs r ON r.id = ti.run_pk WHERE r.dag_id=? AND r.run_id=?", (dag, run_id)).fetchall()
            out = {}
            for r in rows:
                tries = c.execute("SELECT try_number, state, reason, exit_code, log_path, outputs, "
                                  "executor_id FROM tries WHERE ti_pk=? ORDER BY try_number",
                                  (r["id"],)).fetchall()
                out[r["task_id"]] = {"state": r["state"], "reason": r["reason"] or "",
                                     "tries": [dict(t) for t in tries]}
            return out

    def task_state(self, dag, run_id, task):
        return self.tasks(dag, run_id).get(task, {}).get("state")

    def daemon_log(self):
        try:
            return open(self.log_path).read()
        except OSError:
            return ""

    def instance(self):
        return open(os.path.join(self.home, "instance")).read().strip()


def wait_for(fn, timeout=30, step=0.1):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return fn()


def read(path):
    try:
        return open(path).read()
    except OSError:
        return ""


# ---- the tests --------------------------------------------------------------

PIPELINE = """dag: e2e_pipeline
default:
  executor: kubernetes
  kubernetes:
    image: IMAGE
    resources: {requests: {cpu: 50m, memory: 16Mi}, limits: {memory: 64Mi}}
tasks:
  extract:
    command: [sh, -c, 'for i in 1 2 3; do echo "row $i"; done; echo "{\\"rows\\": 3}" > "$KILN_OUTPUTS"']
  transform_a:
    deps: [extract]
    command: [sh, -c, 'echo "a saw {{ tasks.extract.outputs.rows }} rows"; echo "{\\"a\\": 1}" > "$KILN_OUTPUTS"']
  transform_b:
    deps: [extract]
    env: {FACTOR: "2"}
    command: [sh, -c, 'echo "b: factor $FACTOR, task $KILN_TASK_ID try $KILN_TRY_NUMBER"']
  load:
    deps: [transform_a, transform_b]
    command: [sh, -c, 'echo "loaded {{ tasks.extract.outputs.rows }} rows"']
"""


def test_pipeline(k, cl, watch):
    k.write_dag("e2e_pipeline", PIPELINE)
    time.sleep(1.2)
    run = k.trigger("e2e_pipeline")
    st = k.wait_run("e2e_pipeline", run)
    left = wait_for(lambda: not cl.pods("kiln.io/dag=e2e_pipeline"), 10)   # logs complete
    tasks = k.tasks("e2e_pipeline", run)
    ok(st == "success", "example pipeline: the run succeeds on Kubernetes",
       json.dumps(tasks, indent=1) + k.daemon_log()[-1500:])
    ok(all(t["state"] == "success" and len(t["tries"]) == 1 for t in tasks.values()) and len(tasks) == 4,
       "pipeline: every task succeeded with one try", tasks)
    ex = tasks.get("extract", {}).get("tries", [{}])[0]
    ok(read(ex.get("log_path", "")) == "row 1\nrow 2\nrow 3\n", "pipeline: the pod's log is the try's log",
       repr(read(ex.get("log_path", ""))))
    ok(json.loads(ex.get("outputs") or "{}") == {"rows": 3},
       "pipeline: outputs travel in the termination message", ex.get("outputs"))
    ta = tasks.get("transform_a", {}).get("tries", [{}])[0]
    ok(read(ta.get("log_path", "")) == "a saw 3 rows\n", "pipeline: a template read the upstream's output")
    tb = tasks.get("transform_b", {}).get("tries", [{}])[0]
    ok(read(tb.get("log_path", "")) == "b: factor 2, task transform_b try 1\n",
       "pipeline: env and KILN_* variables reach the pod", repr(read(tb.get("log_path", ""))))
    ok((ex.get("executor_id") or "").startswith("kube:" + cl.ns + "/e2e-pipeline-extract-1-"),
       "pipeline: the try records its pod", ex.get("executor_id"))
    ok(left, "pipeline: succeeded pods are deleted", [p["metadata"]["name"] for p in cl.pods("kiln.io/dag=e2e_pipeline")])
    created = watch.created_for("e2e_pipeline")
    ok(len(created) == 4, "pipeline: one pod per try, no more", sorted(created))


FAILURES = """dag: e2e_failures
default:
  executor: kubernetes
  kubernetes: {image: IMAGE}
tasks:
  exit3:
    command: [sh, -c, 'echo about to fail; exit 3']
  oom:
    command: [sh, -c, 'tail /dev/zero']
    kubernetes: {image: IMAGE, resources: {limits: {memory: 32Mi}}}
  pull:
    command: [sh, -c, 'echo never']
    kubernetes: {image: registry.invalid/kiln/none:1}
  unschedulable:
    command: [sh, -c, 'echo never']
    kubernetes: {image: IMAGE, gpu: 64}
  slow:
    command: [sh, -c, 'echo start; sleep 60']
    timeout: 2s
"""


def test_failures(k, cl):
    k.write_dag("e2e_failures", FAILURES)
    time.sleep(1.2)
    run = k.trigger("e2e_failures")
    st = k.wait_run("e2e_failures", run, 120)
    t = k.tasks("e2e_failures", run)
    ok(st == "failed", "failures: the run fails", st)

    def check(task, pattern, n_tries, desc):
        info = t.get(task, {})
        reason = info.get("reason", "")
        ok(info.get("state") == "failed" and re.search(pattern, reason) is not None and
           len(info.get("tries", [])) == n_tries, desc,
           f"state={info.get('state')} tries={len(info.get('tries', []))} reason={reason!r}")

    check("exit3", r"^exited with code 3$", 1, "failed with its exit code")
    ok(read(t.get("exit3", {}).get("tries", [{}])[0].get("log_path", "")) == "about to fail\n",
       "a failed pod's log is complete")
    check("oom", r"^OOMKilled: .*limit of 32Mi", 1, "OOMKilled says so, with the limit")
    check("pull", r"image cannot be pulled: (ErrImagePull|ImagePullBackOff).*registry\.invalid", 2,
          "image pull failure fails after the grace, retried once from the infrastructure budget")
    first = (t.get("pull", {}).get("tries") or [{}])[0].get("reason") or ""
    ok("infrastructure failure 1 of 1 allowed" in first,
       "the first image pull failure counted against the infrastructure budget", first)
    check("unschedulable", r"^unschedulable for 2s: 0/\d+ nodes are available: \d+ Insufficient nvidia\.com/gpu",
          1, "Unschedulable past the pending timeout quotes the scheduler")
    check("slow", r"timed out after 2s|exceeded its deadline", 1, "a timeout stops the pod")
    gone = wait_for(lambda: not any(p["metadata"]["labels"].get("kiln.io/task") in
                                    ("pull", "unschedulable", "slow")
                                    for p in cl.pods("kiln.io/dag=e2e_failures")), 15)
    ok(gone, "pods that never ran, or were stopped, are deleted",
       [p["metadata"]["name"] for p in cl.pods("kiln.io/dag=e2e_failures")])
    kept = [p["metadata"]["labels"].get("kiln.io/task") for p in cl.pods("kiln.io/dag=e2e_failures")]
    ok("exit3" in kept, "a failed pod is kept for a look (kube_keep_failed)", kept)


DISRUPT = """dag: e2e_disrupt
default:
  executor: kubernetes
  kubernetes: {image: IMAGE}
tasks:
  evicted:
    command: [sh, -c, 'echo running; sleep 60']
  deleted:
    command: [sh, -c, 'echo running; sleep 60']
  node_lost:
    command: [sh, -c, 'echo running; sleep 60']
"""


def test_disruptions(k, cl):
    k.write_dag("e2e_disrupt", DISRUPT)
    time.sleep(1.2)
    run = k.trigger("e2e_disrupt")
    acted = set()
    end = time.time() + 60
    # Each try's pod is hit once it runs; the retry (infrastructure budget 1)
    # gets the same, so each task ends failed after two tries.
    while time.time() < end and k.run_state("e2e_disrupt", run) not in ("success", "failed"):
        for p in cl.pods("kiln.io/dag=e2e_disrupt"):
            name = p["metadata"]["name"]
            task = p["metadata"]["labels"].get("kiln.io/task")
            running = p.get("status", {}).get("phase") == "Running"
            if name in acted or not running:
                continue
            acted.add(name)
            if task == "evicted":
                cl.patch_status(name, {"phase": "Failed", "reason": "Evicted",
                                       "message": "The node was low on resource: memory."})
            elif task == "deleted":
                cl.delete_pod(name, grace=0)
            elif task == "node_lost":
                cl.patch_status(name, {"phase": "Unknown", "reason": "NodeLost",
                                       "message": "Node sim-node-0 which was running the pod is unresponsive"})
        time.sleep(0.1)
    st = k.wait_run("e2e_disrupt", run, 30)
    t = k.tasks("e2e_disrupt", run)
    ok(st == "failed", "disruptions: the run fails after the infrastructure budget", st)

    def check(task, pattern, desc):
        info = t.get(task, {})
        tries = info.get("tries", [])
        first = tries[0].get("reason") or "" if tries else ""
        ok(info.get("state") == "failed" and len(tries) == 2 and re.search(pattern, info.get("reason", ""))
           and "infrastructure failure 1 of 1" in first, desc,
           f"state={info.get('state')} tries={len(tries)} reason={info.get('reason')!r} first={first!r}")

    check("evicted", r"^evicted by the node: The node was low on resource: memory\.",
          "eviction: reported as such, retried from the infrastructure budget")
    check("deleted", r"was deleted by someone else", "a pod deleted behind kiln's back is reported")
    check("node_lost", r"^node lost \(NodeLost\)", "node loss is reported")


ADOPT = """dag: e2e_adopt
default:
  executor: kubernetes
  kubernetes: {image: IMAGE}
tasks:
  p1:
    command: [sh, -c, 'i=1; while [ $i -le 40 ]; do echo "p1 line $i"; i=$((i+1)); sleep 0.1; done']
  p2:
    command: [sh, -c, 'i=1; while [ $i -le 40 ]; do echo "p2 line $i"; i=$((i+1)); sleep 0.1; done; echo "{\\"n\\": 40}" > "$KILN_OUTPUTS"']
  quick:
    command: [sh, -c, 'echo quick']
  after:
    deps: [p1, p2, quick]
    command: [sh, -c, 'echo "after {{ tasks.p2.outputs.n }}"']
"""


def check_adoption(k, cl, watch, run, label):
    st = k.wait_run("e2e_adopt", run, 90)
    wait_for(lambda: not cl.pods("kiln.io/dag=e2e_adopt"), 15)   # logs complete
    t = k.tasks("e2e_adopt", run)
    ok(st == "success", f"adoption ({label}): the run succeeds", json.dumps(t)[:1500] + k.daemon_log()[-1500:])
    ok(all(len(v["tries"]) == 1 for v in t.values()) and len(t) == 4,
       f"adoption ({label}): one try per task", {k_: len(v["tries"]) for k_, v in t.items()})
    for p in ("p1", "p2"):
        log = read((t.get(p, {}).get("tries") or [{}])[0].get("log_path", ""))
        want = "".join(f"{p} line {i}\n" for i in range(1, 41))
        ok(log == want, f"adoption ({label}): {p}'s log is complete, no line twice",
           f"{len(log.splitlines())} lines; first diff near: " +
           next((f"{a!r} vs {b!r}" for a, b in zip(log.splitlines(), want.splitlines()) if a != b), "(length)"))
    after = read((t.get("after", {}).get("tries") or [{}])[0].get("log_path", ""))
    ok(after == "after 40\n", f"adoption ({label}): the output of an adopted try reached downstream", repr(after))


def test_adoption(k, cl, watch):
    k.write_dag("e2e_adopt", ADOPT)
    time.sleep(1.2)
    # 1. kill -9 while the pods run, restart at once: adopt and keep following.
    before = set(watch.created_for("e2e_adopt"))
    run = k.trigger("e2e_adopt")
    lines = lambda: all(read(p).count("\n") >= 5 for p in
                        [x["tries"][0]["log_path"] for x in [k.tasks("e2e_adopt", run).get(n) for n in ("p1", "p2")]
                         if x and x["tries"]])
    got = wait_for(lambda: len([1 for n in ("p1", "p2") if (k.tasks("e2e_adopt", run).get(n) or {}).get("tries")]) == 2
                   and lines(), 30)
    ok(got, "adoption (running): both long tasks run before the kill")
    k.kill9()
    # A pod of this instance that no try will claim (its run is gone): the
    # restarted daemon deletes it once recovery is done.
    orphan = {"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": "e2e-orphan-1-0000000000",
                           "labels": {"kiln.io/instance": k.instance(), "kiln.io/dag": "e2e_orphan"}},
              "spec": {"restartPolicy": "Never",
                       "containers": [{"name": "main", "image": IMAGE, "command": ["sh", "-c", "sleep 60"]}]}}
    code, _ = cl.request("POST", f"/api/v1/namespaces/{cl.ns}/pods", orphan)
    k.start()
    gone = wait_for(lambda: not cl.pods("kiln.io/dag=e2e_orphan"), 30)
    ok(code == 201 and gone, "adoption: a pod of this instance no try claims is deleted after recovery",
       f"create={code} left={[p['metadata']['name'] for p in cl.pods('kiln.io/dag=e2e_orphan')]}")
    check_adoption(k, cl, watch, run, "running")
    created = set(watch.created_for("e2e_adopt")) - before
    ok(len(created) == 4, "adoption (running): no duplicate pod (4 tasks, 4 pods)", sorted(created))

    # 2. kill -9, and the pods finish while no daemon runs: collected after.
    before = set(watch.created_for("e2e_adopt"))
    run = k.trigger("e2e_adopt")
    wait_for(lambda: len([1 for n in ("p1", "p2") if (k.tasks("e2e_adopt", run).get(n) or {}).get("tries")]) == 2
             and lines(), 30)
    k.kill9()
    finished = wait_for(lambda: all(p.get("status", {}).get("phase") in ("Succeeded", "Failed")
                                    for p in cl.pods("kiln.io/dag=e2e_adopt")
                                    if p["metadata"]["labels"].get("kiln.io/task") in ("p1", "p2")), 30)
    ok(finished, "adoption (down): the pods finished while the daemon was down")
    k.start()
    check_adoption(k, cl, watch, run, "finished while down")
    created = set(watch.created_for("e2e_adopt")) - before
    ok(len(created) == 4, "adoption (down): no duplicate pod", sorted(created))


WATCH = """dag: e2e_watch
default:
  executor: kubernetes
  kubernetes: {image: IMAGE}
tasks:
""" + "".join(f"""  t{i}:
    command: [sh, -c, 'sleep 0.{3 + i % 5}; echo t{i}']
""" + (f"    deps: [t{i - 4}]\n" if i >= 4 else "") for i in range(16))


def test_watch_faults(k, cl):
    if not cl.is_sim:
        skip("a watch 410 and dropped connections are survived", "fault injection needs kube-sim")
        return
    k.write_dag("e2e_watch", WATCH)
    time.sleep(1.2)
    run = k.trigger("e2e_watch")
    time.sleep(0.5)
    cl.sim_fault({"drop_watches": True})
    time.sleep(0.6)
    cl.sim_fault({"force_410": 1})
    cl.sim_fault({"drop_watches": True})
    time.sleep(0.8)
    cl.sim_fault({"force_410": 1})
    cl.sim_fault({"drop_watches": True})
    # Pod creations answered 429 (Retry-After 1) and 500 a few times: retried.
    cl.sim_fault({"http_429": {"count": 3, "retry_after": 1, "method": "POST", "path": "/pods"}})
    cl.sim_fault({"http_500": {"count": 2, "method": "POST", "path": "/pods"}})
    st = k.wait_run("e2e_watch", run, 60)
    t = k.tasks("e2e_watch", run)
    ok(st == "success" and all(len(v["tries"]) == 1 for v in t.values()) and len(t) == 16,
       "watch faults: every completion seen, one try each",
       json.dumps({n: (v["state"], len(v["tries"])) for n, v in t.items()}) + k.daemon_log()[-2000:])
    log = k.daemon_log()
    ok("resuming" in log or "ended" in log, "watch faults: the daemon saw its watch break and resumed",
       log[-1500:])
    _, stats = cl.request("GET", "/_sim/stats")
    ok(stats and stats.get("http_429", 0) >= 3 and stats.get("http_500", 0) >= 2,
       "API faults: 429 and 500 on pod creation were met and retried (run still succeeded)", stats)


LOGS = """dag: e2e_logs
default:
  executor: kubernetes
  kubernetes: {image: IMAGE}
tasks:
  chatty:
    command: [sh, -c, 'i=1; while [ $i -le 60 ]; do echo "line $i"; echo "again $i"; i=$((i+1)); sleep 0.05; done']
"""


def test_log_resume(k, cl):
    if not cl.is_sim:
        skip("a dropped log stream resumes with sinceTime", "fault injection needs kube-sim")
        return
    k.write_dag("e2e_logs", LOGS)
    time.sleep(1.2)
    run = k.trigger("e2e_logs")
    wait_for(lambda: any(p.get("status", {}).get("phase") == "Running"
                         for p in cl.pods("kiln.io/dag=e2e_logs")), 30)
    for _ in range(4):
        time.sleep(0.6)
        cl.sim_fault({"drop_logs": True})
    st = k.wait_run("e2e_logs", run, 60)
    # The result is reported when the container ends; the pod goes once its
    # log is complete: that is when the file is whole.
    wait_for(lambda: not cl.pods("kiln.io/dag=e2e_logs"), 15)
    t = k.tasks("e2e_logs", run).get("chatty", {})
    log = read((t.get("tries") or [{}])[0].get("log_path", ""))
    want = "".join(f"line {i}\nagain {i}\n" for i in range(1, 61))
    ok(st == "success" and log == want,
       "logs: streams dropped 4 times resume with sinceTime, no line lost or written twice",
       f"run={st} {len(log.splitlines())} lines")


CANCEL = """dag: e2e_cancel
default:
  executor: kubernetes
  kubernetes: {image: IMAGE}
tasks:
  long:
    command: [sh, -c, 'echo started; sleep 120']
"""


def test_cancel(k, cl):
    k.write_dag("e2e_cancel", CANCEL)
    time.sleep(1.2)
    run = k.trigger("e2e_cancel")
    running = wait_for(lambda: any(p.get("status", {}).get("phase") == "Running"
                                   for p in cl.pods("kiln.io/dag=e2e_cancel")), 30)
    ok(running, "cancel: the pod runs")
    r = k.cli("runs", "cancel", "e2e_cancel", run)
    st = k.wait_run("e2e_cancel", run, 30)
    t = k.tasks("e2e_cancel", run).get("long", {})
    ok(r.returncode == 0 and st == "failed" and t.get("state") in ("failed", "upstream_failed", "removed")
       or t.get("state") == "failed", "cancel: the run and its task end",
       f"rc={r.returncode} {r.stdout} {r.stderr} run={st} task={t}")
    gone = wait_for(lambda: not cl.pods("kiln.io/dag=e2e_cancel"), 30)
    ok(gone, "cancel: the pod is deleted (grace, then force)",
       [p["metadata"]["name"] for p in cl.pods("kiln.io/dag=e2e_cancel")])
    ok(read((t.get("tries") or [{}])[0].get("log_path", "")) == "started\n",
       "cancel: the log written before the cancel is kept")


GPU = """dag: e2e_gpu
default:
  executor: kubernetes
  kubernetes: {image: IMAGE, gpu: 1}
tasks:
""" + "".join(f"""  g{i}:
    command: [sh, -c, 'sleep 1; echo g{i}']
""" for i in range(5))


def test_gpu_pool(k, cl, watch):
    k.write_dag("e2e_gpu", GPU)
    time.sleep(1.2)
    run = k.trigger("e2e_gpu")
    st = k.wait_run("e2e_gpu", run, 60)
    ok(st == "success", "gpu pool: GPU steps all run", k.daemon_log()[-1500:])
    most = watch.max_live.get("e2e_gpu", 0)
    ok(0 < most <= 2, "gpu pool: never more GPU pods at once than the nodes' GPUs (2)", most)
    ok("allocatable nvidia.com/gpu" in k.daemon_log(), "gpu pool: sized from the nodes")


def main():
    work = tempfile.mkdtemp(prefix="kiln-kube-e2e.")
    sim = None
    daemons = []
    try:
        if os.environ.get("KUBECONFIG"):
            kc = os.environ["KUBECONFIG"].split(":")[0]
            cl = cluster_from_kubeconfig(kc)
            diag(f"cluster: {cl.server} namespace {cl.ns} ({'kube-sim' if cl.is_sim else 'a real API server'})")
        else:
            sim, kc, cl = start_sim(work)
            diag(f"cluster: kube-sim at {cl.server}")
        # Failures use short grace periods and one infrastructure retry.
        k = Kiln(work, "main", kc, cl, kube_pending_timeout="2s", kube_image_pull_grace="2s",
                 infra_retries=1, infra_retry_delay="500ms", kube_gpus=100, parallelism=64, log_level="info")
        daemons.append(k)
        k.start()
        watch = PodWatch(cl, "kiln.io/instance=" + wait_for(lambda: os.path.exists(
            os.path.join(k.home, "instance")) and k.instance(), 10))
        watch.start()
        test_pipeline(k, cl, watch)
        test_failures(k, cl)
        test_disruptions(k, cl)
        test_adoption(k, cl, watch)
        test_watch_faults(k, cl)
        test_cancel(k, cl)
        test_log_resume(k, cl)
        k.stop()
        # GPU admission: the pool sized from the nodes (kube-sim: 2 x 1 GPU).
        g = Kiln(work, "gpu", kc, cl, parallelism=64)
        daemons.append(g)
        g.start()
        gw = PodWatch(cl, "kiln.io/instance=" + wait_for(lambda: os.path.exists(
            os.path.join(g.home, "instance")) and g.instance(), 10))
        gw.start()
        if cl.is_sim:
            test_gpu_pool(g, cl, gw)
        else:
            skip("gpu pool sized from the nodes", "needs to know the cluster's GPUs")
        g.stop()
    finally:
        for d in daemons:
            d.stop()
        if sim:
            sim.terminate()
            sim.wait()
        if os.environ.get("KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)
        else:
            diag(f"kept {work}")
    print(f"1..{n_tests}")
    sys.exit(1 if n_failed else 0)


if __name__ == "__main__":
    main()
