"""kubelet_core: the simulated scheduler + kubelet shared by kube-sim.py (in
process) and sim-kubelet.py (against any apiserver through REST).  Stdlib only.

The behaviour lives here once; a Backend adapts it to where pods are stored:
  get(ns, name)                    -> a copy of the pod, or None
  peek(ns, name)                   -> None or {'uid', 'deletionTimestamp', 'deletionGracePeriodSeconds'}
                                      (polled every 50 ms per pod: no copy of the whole pod)
  bind(ns, name, uid, node)        -> True when bound (spec.nodeName + PodScheduled=True)
  patch_status(ns, name, uid, st)  -> True when the merge patch {"status": st} was applied
  delete_now(ns, name, uid)        remove the object (the kubelet's gracePeriodSeconds=0 DELETE)
  nodes()                          -> [{'name', 'labels', 'allocatable': {res: Decimal}, 'unschedulable'}]
  take_fault(pod)                  -> a kube-sim pod fault dict, or None (REST: always None)

What a pod goes through (the same in both places, so a test triggers failures the
way a real cluster would, without a fault-injection endpoint):
  scheduler  nodeSelector, spec.unschedulable and per-pod requests (nvidia.com/gpu, cpu,
             memory) against each node's allocatable; none fits -> PodScheduled=False
             Unschedulable "0/N nodes are available: N Insufficient nvidia.com/gpu."
  image      an unparsable reference -> waiting InvalidImageName; a registry host ending
             in .invalid -> waiting ErrImagePull, ImagePullBackOff, retried with back-off
  run        command+args ($(VAR) expanded from the container env) as a local process in
             its own session; env; workingDir when it exists here; stdout+stderr -> log
  memory     the session's RSS (from /proc) sampled every 50 ms; over limits.memory ->
             SIGKILL, terminated OOMKilled exit 137 (what the cgroup OOM killer leads to)
  message    env values equal to terminationMessagePath are replaced by a per-pod file;
             its first 4096 bytes become state.terminated.message
             (FallbackToLogsOnError: the log tail when the file is empty and the exit failed)
  deadline   activeDeadlineSeconds from startTime -> Failed DeadlineExceeded
  delete     deletionTimestamp -> SIGTERM the group, wait the grace period, SIGKILL,
             report the container terminated, then delete_now
  override   a terminal phase (or Unknown) written by someone else -> SIGKILL, that
             status is kept; a later deletion is still finished
"""
import collections
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from datetime import datetime, timezone
from decimal import Decimal

SUFFIX = {'Ki': 2**10, 'Mi': 2**20, 'Gi': 2**30, 'Ti': 2**40, 'Pi': 2**50, 'Ei': 2**60,
          'n': Decimal('1e-9'), 'u': Decimal('1e-6'), 'm': Decimal('1e-3'), '': 1,
          'k': 10**3, 'M': 10**6, 'G': 10**9, 'T': 10**12, 'P': 10**15, 'E': 10**18}

MSG_LIMIT = 4096          # what the kubelet keeps of a termination message
FALLBACK_LINES = 80       # FallbackToLogsOnError: last lines of the log ...
FALLBACK_BYTES = 2048     # ... and at most this many bytes
PULL_BACKOFF = (10.0, 300.0)   # the kubelet's image pull back-off: first and longest wait
SAMPLE_S = 0.05           # memory sampling and state polling period


def qty_value(s):
    m = re.match(r'^([+-]?[0-9.]+)(.*)$', str(s))
    num, suf = Decimal(m.group(1)), m.group(2)
    if suf[:1] in ('e', 'E'):
        return num * (Decimal(10) ** int(suf[1:]))
    return num * Decimal(SUFFIX[suf])


def now_rfc3339():
    return datetime.now(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def ts_nano(t):
    d = datetime.fromtimestamp(t, timezone.utc)
    return d.strftime('%Y-%m-%dT%H:%M:%S.') + f'{int((t % 1) * 1e9):09d}Z'


def parse_time(s):
    """RFC 3339 -> epoch seconds, fraction dropped (the kubelet gets whole seconds)."""
    s = s.replace('Z', '+00:00')
    m = re.match(r'^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$', s)
    if not m:
        raise ValueError(s)
    return datetime.fromisoformat(m.group(1) + m.group(3)).timestamp()


# ---------------------------------------------------------------- image references
# The distribution reference grammar (name components lowercase, optional domain,
# tag, digest).  Whether the first component is a registry host follows the
# docker rule: it has a '.' or ':' or is "localhost".
_COMP = r'[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*'
_DCOMP = r'(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])'
_DOMAIN = _DCOMP + r'(?:\.' + _DCOMP + r')*(?::[0-9]+)?'
IMAGE_REF = re.compile(r'^(?:(' + _DOMAIN + r')/)?(' + _COMP + r'(?:/' + _COMP + r')*)'
                       r'(?::([\w][\w.-]{0,127}))?(?:@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*'
                       r':[0-9a-fA-F]{32,}))?$')


def parse_image(img):
    """-> (host, repository, tag-or-digest) or None when the reference is invalid."""
    m = IMAGE_REF.match(img or '')
    if not m or len(img) > 255:
        return None
    first, _, rest = img.partition('/')
    if rest and ('.' in first or ':' in first or first == 'localhost'):
        host, name = first, rest
    else:
        host, name = 'docker.io', img if '/' in img else 'library/' + img
    name = re.split(r'[:@]', name, maxsplit=1)[0]
    ref = m.group(4) or m.group(3) or 'latest'
    return host, name, ref


def image_problem(img):
    """-> None, or (waiting reason, message) as the kubelet words them."""
    p = parse_image(img)
    if p is None:
        return ('InvalidImageName', f'Failed to apply default image tag "{img}": couldn\'t parse image '
                                    f'reference "{img}": invalid reference format')
    host, name, ref = p
    hostname = host.rsplit(':', 1)[0] if ':' in host else host
    if hostname.lower().endswith('.invalid'):
        full = img if (':' in img.rsplit('/', 1)[-1] or '@' in img) else img + ':latest'
        return ('ErrImagePull', f'Failed to pull image "{img}": rpc error: code = Unknown desc = failed to pull '
                                f'and unpack image "{full}": failed to resolve reference "{full}": failed to do '
                                f'request: Head "https://{host}/v2/{name}/manifests/{ref}": dial tcp: lookup '
                                f'{hostname}: no such host')
    return None


# ---------------------------------------------------------------- helpers
def expand_refs(s, env):
    """$(VAR) -> the container env's value (unknown references stay), $$ -> $."""
    out, i = [], 0
    while i < len(s):
        if s.startswith('$$', i):
            out.append('$')
            i += 2
        elif s.startswith('$(', i) and ')' in s[i + 2:]:
            j = s.index(')', i + 2)
            name = s[i + 2:j]
            out.append(env[name] if name in env else s[i:j + 1])
            i = j + 1
        else:
            out.append(s[i])
            i += 1
    return ''.join(out)


def pod_requests(pod):
    """Sum of the containers' requests (limits where requests are missing)."""
    need = collections.defaultdict(Decimal)
    for c in pod['spec'].get('containers') or []:
        res = c.get('resources') or {}
        merged = dict(res.get('limits') or {})
        merged.update(res.get('requests') or {})
        for k, v in merged.items():
            try:
                need[k] += qty_value(v)
            except (ValueError, KeyError, ArithmeticError, AttributeError):
                pass
    return need


def cond(t, s, reason=None, msg=None):
    c = {'type': t, 'status': s, 'lastProbeTime': None, 'lastTransitionTime': now_rfc3339()}
    if reason:
        c['reason'] = reason
    if msg:
        c['message'] = msg
    return c


def peek_of(pod):
    if not pod:
        return None
    m = pod['metadata']
    return {'uid': m['uid'], 'deletionTimestamp': m.get('deletionTimestamp'),
            'deletionGracePeriodSeconds': m.get('deletionGracePeriodSeconds'),
            'phase': (pod.get('status') or {}).get('phase')}


def session_rss():
    """{session id: resident bytes} for every process on the machine (one /proc pass)."""
    page = os.sysconf('SC_PAGE_SIZE')
    out = collections.defaultdict(int)
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open(f'/proc/{d}/stat', 'rb') as f:
                rest = f.read().rsplit(b')', 1)[1].split()
            out[int(rest[3])] += int(rest[21]) * page
        except (OSError, IndexError, ValueError):
            pass
    return out


def session_pids(sid):
    pids = []
    for d in os.listdir('/proc'):
        if d.isdigit():
            try:
                with open(f'/proc/{d}/stat', 'rb') as f:
                    if int(f.read().rsplit(b')', 1)[1].split()[3]) == sid:
                        pids.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return pids


class PodLog:
    def __init__(self):
        self.lines = []          # (t, text-with-newline)
        self.done = False


def log_params(q):
    """Query (dict of str) -> parameters for iter_log; ValueError on a bad value."""
    since = parse_time(q['sinceTime']) if q.get('sinceTime') else None
    if q.get('sinceSeconds'):
        since = time.time() - int(q['sinceSeconds'])
    return {'follow': q.get('follow') in ('1', 'true'), 'stamps': q.get('timestamps') in ('1', 'true'),
            'since': since, 'tail': int(q['tailLines']) if q.get('tailLines') else None,
            'limit': int(q['limitBytes']) if q.get('limitBytes') else None}


def iter_log(lock, log, p):
    """Yields the log's bytes as the kubelet serves them; with follow, blocks
    (on lock, a Condition notified when lines arrive) until the container ends."""
    sent = 0
    with lock:
        lines = [ln for ln in log.lines if p['since'] is None or ln[0] >= p['since']]
        idx = len(log.lines)
    if p['tail'] is not None:
        lines = lines[-p['tail']:] if p['tail'] > 0 else []
    limit = p['limit']
    while True:
        for t, text in lines:
            b = (((ts_nano(t) + ' ') if p['stamps'] else '') + text).encode()
            if limit is not None and sent + len(b) > limit:
                b = b[:limit - sent]
            if b:
                yield b
                sent += len(b)
            if limit is not None and sent >= limit:
                return
        if not p['follow']:
            return
        with lock:
            while idx >= len(log.lines) and not log.done:
                lock.wait(0.2)
            lines = log.lines[idx:]
            idx = len(log.lines)
            done = log.done
        if done and not lines:
            return


# ---------------------------------------------------------------- the kubelet
class Kubelet:
    def __init__(self, backend, lock=None, delay=0.05, pull_backoff=PULL_BACKOFF):
        self.b = backend
        self.lock = lock or threading.Condition()
        self.delay = delay
        self.pull_backoff = pull_backoff
        self.logs = {}           # uid -> PodLog
        self.procs = {}          # uid -> Popen
        self.limits = {}         # uid -> (session id, memory limit bytes)
        self.oom = set()         # uids the memory sampler killed
        self.mine = {}           # uid -> the status this kubelet last wrote
        self.sampler = None
        self.tmp = None          # per-kubelet directory for termination-message files, made on first use

    # -- public
    def log(self, uid):
        with self.lock:
            return self.logs.setdefault(uid, PodLog())

    def forget(self, uid):
        """The pod object is gone: drop its log (the node's log files go with the pod)."""
        with self.lock:
            lg = self.logs.pop(uid, None)
            if lg:
                lg.done = True
                self.lock.notify_all()

    def kill(self, uid, sig):
        p = self.procs.get(uid)
        if p and p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except OSError:
                pass

    def kill_all(self):
        """At exit: no process outlives the node."""
        for uid in list(self.procs):
            self.kill(uid, signal.SIGKILL)
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def schedule_and_run(self, ns, name, uid):
        """kube-sim's path: one thread per pod plays scheduler then kubelet."""
        time.sleep(self.delay)
        pod = self.b.get(ns, name)
        if not pod or pod['metadata']['uid'] != uid:
            return
        fault = self.b.take_fault(pod) or {}
        if not pod['spec'].get('nodeName'):
            if not self.schedule(pod, fault):
                return
        self.run(ns, name, uid, fault)

    # -- scheduler
    def schedule(self, pod, fault=None):
        """Binds the pod to the first node that fits -> node name, or patches
        PodScheduled=False/Unschedulable with the scheduler's message -> None."""
        ns, name, uid = pod['metadata']['namespace'], pod['metadata']['name'], pod['metadata']['uid']
        nodes = self.b.nodes()
        msg = None
        if (fault or {}).get('fault') == 'unschedulable':
            msg = fault.get('message') or \
                f'0/{len(nodes)} nodes are available: {len(nodes)} Insufficient nvidia.com/gpu.'
        else:
            need = pod_requests(pod)
            sel = pod['spec'].get('nodeSelector') or {}
            why = collections.Counter()
            for n in nodes:
                r = self.misfit(n, need, sel)
                if r is None:
                    return n['name'] if self.b.bind(ns, name, uid, n['name']) else None
                why[r] += 1
            msg = f'0/{len(nodes)} nodes are available: ' + \
                ', '.join(f'{c} {r}' for r, c in sorted(why.items())) + '.' if nodes else \
                'no nodes available to schedule pods'
        self.b.patch_status(ns, name, uid, {'phase': 'Pending', 'conditions': [
            cond('PodScheduled', 'False', 'Unschedulable', msg)]})
        return None

    @staticmethod
    def misfit(node, need, sel):
        """The scheduler's first failing filter for this node, or None."""
        if node.get('unschedulable'):
            return 'node(s) were unschedulable'
        labels = node.get('labels') or {}
        if any(labels.get(k) != v for k, v in sel.items()):
            return "node(s) didn't match node selector"
        alloc = node.get('allocatable') or {}
        for res in sorted(need):
            # cpu and memory when the node states them; extended resources always
            if res not in ('cpu', 'memory') and '/' not in res or '/' not in res and res not in alloc:
                continue
            if need[res] > alloc.get(res, Decimal(0)):
                return f'Insufficient {res}'
        return None

    # -- kubelet
    def run(self, ns, name, uid, fault=None):
        fault = fault or {}
        pod = self.b.get(ns, name)
        if not pod or pod['metadata']['uid'] != uid:
            return
        ctrs = pod['spec']['containers']
        ctr = ctrs[0]
        started = time.time()
        st = {'phase': 'Pending', 'hostIP': '127.0.0.1', 'podIP': '127.0.0.1', 'podIPs': [{'ip': '127.0.0.1'}],
              'startTime': now_rfc3339(),
              'conditions': [cond('Initialized', 'True'),
                             cond('Ready', 'False', 'ContainersNotReady',
                                  f'containers with unready status: [{" ".join(c["name"] for c in ctrs)}]'),
                             cond('ContainersReady', 'False', 'ContainersNotReady',
                                  f'containers with unready status: [{" ".join(c["name"] for c in ctrs)}]'),
                             cond('PodScheduled', 'True')],
              'containerStatuses': [{'name': c['name'], 'image': c['image'], 'imageID': '', 'ready': False,
                                     'restartCount': 0, 'started': False,
                                     'state': {'waiting': {'reason': 'ContainerCreating'}}} for c in ctrs]}
        if not self.b.patch_status(ns, name, uid, st):
            return
        with self.lock:
            self.mine[uid] = st
        try:
            self.admitted(ns, name, uid, pod, ctr, st, started, fault)
        finally:
            with self.lock:
                self.mine.pop(uid, None)

    def admitted(self, ns, name, uid, pod, ctr, st, started, fault):
        kind = fault.get('fault')
        deadline = pod['spec'].get('activeDeadlineSeconds')
        self.log(uid)

        def waiting(reason, msg):
            st['containerStatuses'][0]['state'] = {'waiting': {'reason': reason, 'message': msg}}
            return self.b.patch_status(ns, name, uid, st)

        # the image "pull"
        out = self.idle(ns, name, uid, started, deadline, self.delay)
        prob = image_problem(ctr['image'])
        if out is None and kind == 'image_pull':
            prob = ('ErrImagePull', fault.get('message') or
                    f'rpc error: code = NotFound desc = failed to pull and unpack image "{ctr["image"]}"')
        if out is None and prob:
            if prob[0] == 'InvalidImageName':
                waiting(*prob)
                out = self.idle(ns, name, uid, started, deadline, None)
            else:
                wait = self.pull_backoff[0]
                while out is None:
                    waiting(*prob)
                    out = self.idle(ns, name, uid, started, deadline, 0.3)
                    if out is None:
                        waiting('ImagePullBackOff', f'Back-off pulling image "{ctr["image"]}"')
                        out = self.idle(ns, name, uid, started, deadline, wait)
                        wait = min(wait * 2, self.pull_backoff[1])
        if out is not None:
            return self.stop_unstarted(ns, name, uid, st, out)

        if kind == 'start_error':
            return self.finish(ns, name, uid, st, 128, 'StartError', fault.get('message') or
                               'failed to create containerd task: exec: "nope": executable file not found in $PATH')
        env_list = ctr.get('env') or []
        cenv = {}
        msg_path = ctr.get('terminationMessagePath') or '/dev/termination-log'
        with self.lock:
            if self.tmp is None or not os.path.isdir(self.tmp):
                self.tmp = tempfile.mkdtemp(prefix='sim-kubelet.')
        msg_file = os.path.join(self.tmp, f'{uid}.termination-log')
        for e in env_list:
            v = expand_refs(e.get('value', ''), cenv)
            cenv[e['name']] = msg_file if v == msg_path else v
        argv = [expand_refs(a, cenv) for a in list(ctr.get('command') or []) + list(ctr.get('args') or [])]
        if not argv:
            return self.finish(ns, name, uid, st, 128, 'StartError', 'no command (the simulator ignores images)')
        env = dict(os.environ)
        env.update(cenv)
        env['HOSTNAME'] = name
        cwd = ctr.get('workingDir')
        if cwd and not os.path.isdir(cwd):
            cwd = None
        open(msg_file, 'wb').close()
        log = self.log(uid)
        try:
            proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as e:
            return self.finish(ns, name, uid, st, 128, 'StartError',
                               f'failed to create containerd task: failed to start: {e}')
        with self.lock:
            self.procs[uid] = proc
        limit = pod_requests({'spec': {'containers': [{'resources': {
            'limits': (ctr.get('resources') or {}).get('limits') or {}}}]}}).get('memory')
        if limit:
            self.watch_memory(uid, proc.pid, int(limit))

        st['phase'] = 'Running'
        for c in st['conditions']:
            if c['type'] in ('Ready', 'ContainersReady'):
                c.update(status='True', lastTransitionTime=now_rfc3339())
                c.pop('reason', None)
                c.pop('message', None)
        st['containerStatuses'][0].update({'ready': True, 'started': True, 'containerID': f'sim://{uid}',
                                           'state': {'running': {'startedAt': now_rfc3339()}}})
        self.b.patch_status(ns, name, uid, st)

        def reader():
            for line in iter(proc.stdout.readline, b''):
                with self.lock:
                    log.lines.append((time.time(), line.decode('utf-8', 'replace')))
                    self.lock.notify_all()
        rt = threading.Thread(target=reader, daemon=True)
        rt.start()
        after = fault.get('after', 0.2)
        run_start = time.time()
        outcome = None
        while proc.poll() is None:
            time.sleep(SAMPLE_S)
            if kind in ('oom', 'evicted', 'delete') and time.time() - run_start >= after:
                outcome = kind
                break
            outcome = self.check(ns, name, uid, started, deadline)
            if outcome:
                break
        if outcome == 'deleting':
            grace = self.grace(ns, name)
            self.kill(uid, signal.SIGTERM)
            t0 = time.time()
            while proc.poll() is None and time.time() - t0 < grace:
                time.sleep(SAMPLE_S)
        if outcome:
            self.kill(uid, signal.SIGKILL)
        rc = proc.wait()
        rt.join(2)
        with self.lock:
            self.limits.pop(uid, None)
            oomed = uid in self.oom
            self.oom.discard(uid)
        code = rc if rc >= 0 else 128 - rc
        msg = self.termination_message(ctr, msg_file, code, log)
        if outcome == 'gone':
            return self.forget(uid)
        if outcome == 'overridden':
            with self.lock:
                log.done = True
                self.lock.notify_all()
            return self.await_deletion(ns, name, uid)
        if outcome == 'delete':
            self.b.delete_now(ns, name, uid)
            return self.forget(uid)
        if outcome == 'deleting':
            self.finish(ns, name, uid, st, code, 'Completed' if code == 0 else 'Error', msg)
            self.b.delete_now(ns, name, uid)
            return self.forget(uid)
        if oomed or outcome == 'oom':
            self.finish(ns, name, uid, st, 137, 'OOMKilled', msg)
        elif outcome == 'evicted':
            self.finish(ns, name, uid, st, 137, 'Error', msg, pod_reason='Evicted', pod_msg=fault.get('message') or
                        'The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. '
                        f'Container {ctr["name"]} was using 1Gi, request is 0, has larger consumption of memory.')
        elif outcome == 'deadline':
            self.finish(ns, name, uid, st, 137, 'Error', msg, pod_reason='DeadlineExceeded',
                        pod_msg='Pod was active on the node longer than the specified deadline')
        else:
            self.finish(ns, name, uid, st, code, 'Completed' if code == 0 else 'Error', msg)

    def termination_message(self, ctr, path, code, log):
        try:
            with open(path, 'rb') as f:
                data = f.read(MSG_LIMIT)
            os.unlink(path)
        except OSError:
            data = b''
        if not data and code != 0 and ctr.get('terminationMessagePolicy') == 'FallbackToLogsOnError':
            with self.lock:
                tail = ''.join(t for _, t in log.lines[-FALLBACK_LINES:])
            data = tail.encode()[-FALLBACK_BYTES:]
        return data.decode('utf-8', 'replace') or None

    # -- state checks
    def check(self, ns, name, uid, started, deadline):
        """-> 'gone' | 'deleting' | 'overridden' | 'deadline' | None"""
        p = self.b.peek(ns, name)
        if not p or p['uid'] != uid:
            return 'gone'
        if p['deletionTimestamp']:
            return 'deleting'
        with self.lock:
            mine = (self.mine.get(uid) or {}).get('phase')
        if p['phase'] in ('Succeeded', 'Failed', 'Unknown') and p['phase'] != mine:
            return 'overridden'
        if deadline and time.time() - started >= deadline:
            return 'deadline'
        return None

    def idle(self, ns, name, uid, started, deadline, secs):
        """Waits secs (None: for ever) watching the pod -> an outcome or None."""
        end = None if secs is None else time.time() + secs
        while end is None or time.time() < end:
            out = self.check(ns, name, uid, started, deadline)
            if out:
                return out
            time.sleep(SAMPLE_S)
        return None

    def grace(self, ns, name):
        return (self.b.peek(ns, name) or {}).get('deletionGracePeriodSeconds') or 0

    def stop_unstarted(self, ns, name, uid, st, out):
        """A container that never started: deadline -> Failed; deletion -> gone."""
        if out == 'deadline':
            st.update(phase='Failed', reason='DeadlineExceeded',
                      message='Pod was active on the node longer than the specified deadline')
            self.b.patch_status(ns, name, uid, st)
        elif out == 'deleting':
            self.b.delete_now(ns, name, uid)
            self.forget(uid)
        elif out == 'overridden':
            self.await_deletion(ns, name, uid)
        else:
            self.forget(uid)

    def await_deletion(self, ns, name, uid):
        """Someone else wrote a terminal phase (a test playing eviction or node
        loss): the process is stopped and that status is left alone; only a later
        deletion is finished, as the kubelet would."""
        while True:
            p = self.b.peek(ns, name)
            if not p or p['uid'] != uid:
                return self.forget(uid)
            if p['deletionTimestamp']:
                self.b.delete_now(ns, name, uid)
                return self.forget(uid)
            time.sleep(SAMPLE_S)

    def finish(self, ns, name, uid, st, code, reason, msg, pod_reason=None, pod_msg=None):
        st['phase'] = 'Succeeded' if code == 0 and not pod_reason and reason == 'Completed' else 'Failed'
        if pod_reason:
            st['reason'], st['message'] = pod_reason, pod_msg
        for c in st['conditions']:
            if c['type'] in ('Ready', 'ContainersReady') and c['status'] == 'True':
                c.update(status='False', reason='PodCompleted', lastTransitionTime=now_rfc3339())
        cs = st['containerStatuses'][0]
        run = cs.get('state', {}).get('running', {})
        term = {'exitCode': code, 'reason': reason, 'startedAt': run.get('startedAt', now_rfc3339()),
                'finishedAt': now_rfc3339(), 'containerID': f'sim://{uid}'}
        if msg:
            term['message'] = msg
        cs.update({'ready': False, 'started': False, 'state': {'terminated': term}})
        with self.lock:
            lg = self.logs.get(uid)
            if lg:
                lg.done = True
                self.lock.notify_all()
            self.procs.pop(uid, None)
        self.b.patch_status(ns, name, uid, st)

    # -- memory limits
    def watch_memory(self, uid, sid, limit):
        with self.lock:
            self.limits[uid] = (sid, limit)
            if self.sampler is None or not self.sampler.is_alive():
                self.sampler = threading.Thread(target=self.sample, daemon=True)
                self.sampler.start()

    def sample(self):
        """One thread for every pod with a memory limit: a /proc pass per period."""
        while True:
            with self.lock:
                todo = dict(self.limits)
                if not todo:
                    self.sampler = None
                    return
            rss = session_rss()
            for uid, (sid, limit) in todo.items():
                if rss.get(sid, 0) > limit:
                    with self.lock:
                        self.oom.add(uid)
                        self.limits.pop(uid, None)
                    for pid in session_pids(sid):
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except OSError:
                            pass
            time.sleep(SAMPLE_S)
