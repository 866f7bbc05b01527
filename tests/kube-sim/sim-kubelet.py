#!/usr/bin/env python3
"""sim-kubelet: kube-sim's scheduler + kubelet (kubelet_core.py) against a REAL
kube-apiserver, through REST only (stdlib; PyYAML if there, for the kubeconfig).

  - registers Node NAME (InternalIP 127.0.0.1, kubelet port PORT, capacity and
    allocatable cpu/memory/pods/nvidia.com/gpu, Ready) and refreshes it every 20 s;
  - LIST + WATCH /api/v1/pods (bookmarks, re-list on 410);
  - scheduler: an unbound pod of the default scheduler -> POST pods/NAME/binding to a
    node that fits, or a PodScheduled=False Unschedulable status patch;
  - kubelet: a pod bound to NAME runs as a local process; its state goes to the
    apiserver as merge patches of pods/NAME/status; deletionTimestamp -> SIGTERM,
    grace, SIGKILL, then DELETE gracePeriodSeconds=0 (uid precondition);
  - serves GET /containerLogs/NS/POD/CONTAINER on https://127.0.0.1:PORT (follow,
    timestamps, sinceTime, sinceSeconds, tailLines, limitBytes), which the apiserver
    proxies for pods/NAME/log.

Usage: sim-kubelet.py --kubeconfig F [--node-name fake-node] [--port 10250]
         --cert CRT --key KEY [--node-gpus 2] [--node-cpu 8] [--node-memory 16Gi] [--pidfile F]
"""
import argparse
import copy
import http.client
import json
import os
import signal
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from kubelet_core import Kubelet, iter_log, log_params, now_rfc3339, peek_of, qty_value  # noqa: E402
from simclient import Remote  # noqa: E402

MERGE = 'application/merge-patch+json'


def say(msg):
    sys.stderr.write(f'sim-kubelet: {msg}\n')
    sys.stderr.flush()


def newer(a, b):
    """Is resourceVersion a at least b?  (etcd revisions; opaque elsewhere)"""
    try:
        return int(a) >= int(b)
    except (TypeError, ValueError):
        return True


class RestBackend:
    """kubelet_core's view of a real apiserver: reads from the watch cache,
    writes through REST."""
    def __init__(self, api, node):
        self.api = api
        self.node = node
        self.lock = threading.Lock()
        self.pods = {}           # (ns, name) -> newest pod seen

    def remember(self, pod):
        key = (pod['metadata']['namespace'], pod['metadata']['name'])
        with self.lock:
            old = self.pods.get(key)
            if old is None or old['metadata']['uid'] != pod['metadata']['uid'] or \
                    newer(pod['metadata'].get('resourceVersion'), old['metadata'].get('resourceVersion')):
                self.pods[key] = pod

    def forget(self, pod):
        key = (pod['metadata']['namespace'], pod['metadata']['name'])
        with self.lock:
            old = self.pods.get(key)
            if old and old['metadata']['uid'] == pod['metadata']['uid']:
                del self.pods[key]

    def get(self, ns, name):
        with self.lock:
            return copy.deepcopy(self.pods.get((ns, name)))

    def peek(self, ns, name):
        with self.lock:
            return peek_of(self.pods.get((ns, name)))

    def bind(self, ns, name, uid, node):
        st, out, _ = self.api.req('POST', f'/api/v1/namespaces/{ns}/pods/{name}/binding',
                                  {'apiVersion': 'v1', 'kind': 'Binding', 'metadata': {'name': name, 'uid': uid},
                                   'target': {'apiVersion': 'v1', 'kind': 'Node', 'name': node}})
        if st != 201:
            say(f'bind {ns}/{name}: {st} {out}')
        return st == 201

    def patch_status(self, ns, name, uid, status):
        st, out, _ = self.api.req('PATCH', f'/api/v1/namespaces/{ns}/pods/{name}/status',
                                  {'metadata': {'uid': uid}, 'status': status}, MERGE)
        if st == 200:
            self.remember(out)
            return True
        say(f'status of {ns}/{name}: {st} {out}')
        return False

    def delete_now(self, ns, name, uid):
        st, out, _ = self.api.req('DELETE', f'/api/v1/namespaces/{ns}/pods/{name}',
                                  {'apiVersion': 'v1', 'kind': 'DeleteOptions', 'gracePeriodSeconds': 0,
                                   'preconditions': {'uid': uid}})
        if st not in (200, 404, 409):
            say(f'delete {ns}/{name}: {st} {out}')

    def nodes(self):
        st, l, _ = self.api.req('GET', '/api/v1/nodes')
        out = []
        for n in (l or {}).get('items', []) if st == 200 else []:
            alloc = {}
            for k, v in ((n.get('status') or {}).get('allocatable') or {}).items():
                try:
                    alloc[k] = qty_value(v)
                except (ValueError, KeyError, ArithmeticError):
                    pass
            out.append({'name': n['metadata']['name'], 'labels': n['metadata'].get('labels') or {},
                        'allocatable': alloc, 'unschedulable': bool((n.get('spec') or {}).get('unschedulable'))})
        return out

    def take_fault(self, pod):
        return None


class Agent:
    def __init__(self, args):
        self.args = args
        self.api = Remote(args.kubeconfig)
        self.b = RestBackend(self.api, args.node_name)
        self.kubelet = Kubelet(self.b, delay=args.delay)
        self.scheduled = set()   # uids handed to the scheduler
        self.ran = set()         # uids handed to the kubelet

    # -- the Node
    def node_status(self):
        res = {'cpu': self.args.node_cpu, 'memory': self.args.node_memory, 'pods': '110',
               'nvidia.com/gpu': str(self.args.node_gpus)}
        return {'status': {
            'addresses': [{'type': 'InternalIP', 'address': '127.0.0.1'},
                          {'type': 'Hostname', 'address': self.args.node_name}],
            'daemonEndpoints': {'kubeletEndpoint': {'Port': self.args.port}},
            'capacity': res, 'allocatable': res,
            'conditions': [{'type': 'Ready', 'status': 'True', 'reason': 'KubeletReady',
                            'message': 'kubelet is posting ready status', 'lastHeartbeatTime': now_rfc3339(),
                            'lastTransitionTime': self.started}],
            'nodeInfo': {'kubeletVersion': 'v1.20.2-sim', 'operatingSystem': 'linux', 'architecture': 'amd64',
                         'containerRuntimeVersion': 'sim://1', 'kernelVersion': '', 'osImage': '',
                         'kubeProxyVersion': '', 'machineID': '', 'systemUUID': '', 'bootID': ''}}}

    def register(self):
        self.started = now_rfc3339()
        name = self.args.node_name
        labels = {'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64'}
        if self.args.node_gpus:
            labels['nvidia.com/gpu.present'] = 'true'
        st, out, _ = self.api.req('POST', '/api/v1/nodes', {'apiVersion': 'v1', 'kind': 'Node',
                                                            'metadata': {'name': name, 'labels': labels}})
        if st == 409:
            self.api.req('PATCH', f'/api/v1/nodes/{name}', {'metadata': {'labels': labels}}, MERGE)
        elif st != 201:
            raise SystemExit(f'sim-kubelet: cannot register node {name}: {st} {out}')
        self.heartbeat()

    def heartbeat(self):
        st, out, _ = self.api.req('PATCH', f'/api/v1/nodes/{self.args.node_name}/status', self.node_status(), MERGE)
        if st != 200:
            say(f'node status: {st} {out}')

    def heartbeats(self):
        while True:
            time.sleep(20)
            try:
                self.heartbeat()
            except OSError as e:
                say(f'heartbeat: {e}')

    # -- pods
    def on_pod(self, typ, pod):
        if typ == 'DELETED':
            self.b.forget(pod)
            self.kubelet.forget(pod['metadata']['uid'])    # the node's log files go with the pod
            return
        self.b.remember(pod)
        meta, spec = pod['metadata'], pod['spec']
        uid, ns, name = meta['uid'], meta['namespace'], meta['name']
        phase = (pod.get('status') or {}).get('phase')
        node = spec.get('nodeName')
        if not node:
            if uid in self.scheduled or meta.get('deletionTimestamp') or \
                    spec.get('schedulerName', 'default-scheduler') != 'default-scheduler':
                return
            self.scheduled.add(uid)
            threading.Thread(target=self.kubelet.schedule, args=(copy.deepcopy(pod),), daemon=True).start()
        elif node == self.args.node_name and uid not in self.ran:
            self.ran.add(uid)
            if meta.get('deletionTimestamp') or phase not in (None, 'Pending'):
                # not ours to run (from before this kubelet started): only finish deletions
                if meta.get('deletionTimestamp'):
                    threading.Thread(target=self.b.delete_now, args=(ns, name, uid), daemon=True).start()
                return
            threading.Thread(target=self.kubelet.run, args=(ns, name, uid), daemon=True).start()

    def watch_pods(self):
        rv = None
        while True:
            try:
                if rv is None:
                    st, l, _ = self.api.req('GET', '/api/v1/pods', timeout=60)
                    if st != 200:
                        say(f'list pods: {st} {l}')
                        time.sleep(1)
                        continue
                    rv = l['metadata']['resourceVersion']
                    for p in l['items']:
                        self.on_pod('ADDED', p)
                rv = self.stream(rv)
            except (OSError, ValueError, http.client.HTTPException) as e:
                say(f'watch: {e!r}')
                time.sleep(0.5)

    def stream(self, rv):
        """One watch -> the RV to go on from (None: list again)."""
        c = self.api.conn(330)
        c.request('GET', f'/api/v1/pods?watch=1&allowWatchBookmarks=true&timeoutSeconds=300'
                         f'&resourceVersion={quote(rv)}', headers=self.api.headers())
        r = c.getresponse()
        if r.status != 200:
            say(f'watch: HTTP {r.status}')
            c.close()
            return None
        try:
            while True:
                line = r.readline()
                if not line:
                    return rv
                if not line.strip():
                    continue
                ev = json.loads(line)
                obj = ev.get('object') or {}
                if ev['type'] == 'ERROR':
                    return None if obj.get('code') == 410 else rv
                rv = obj.get('metadata', {}).get('resourceVersion') or rv
                if ev['type'] != 'BOOKMARK':
                    self.on_pod(ev['type'], obj)
        finally:
            c.close()

    # -- logs
    def make_server(self):
        agent = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.0'   # the body ends when the connection closes

            def log_message(self, fmt, *a):
                if agent.args.verbose:
                    say(fmt % a)

            def text(self, code, msg):
                body = msg.encode()
                self.send_response(code)
                self.send_header('Content-Type', 'text/plain; charset=utf-8')
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                u = urlsplit(self.path)
                if u.path.rstrip('/') == '/healthz':
                    return self.text(200, 'ok')
                parts = u.path.strip('/').split('/')
                if len(parts) != 4 or parts[0] != 'containerLogs':
                    return self.text(404, '404 page not found')
                _, ns, name, cname = parts
                q = {k: v[-1] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
                pod = agent.b.get(ns, name)
                if not pod:
                    return self.text(404, f'pod "{name}" not found')
                names = [c['name'] for c in pod['spec']['containers']]
                if cname not in names:
                    return self.text(400, f'container "{cname}" not found in pod "{name}"')
                cs = ((pod.get('status') or {}).get('containerStatuses') or [])
                cs = next((c for c in cs if c.get('name') == cname), {})
                waiting = (cs.get('state') or {}).get('waiting')
                log = agent.kubelet.logs.get(pod['metadata']['uid'])
                if waiting or not cs or log is None or cname != names[0]:
                    reason = (waiting or {}).get('reason', 'ContainerCreating')
                    return self.text(400, f'container "{cname}" in pod "{name}" is waiting to start: {reason}')
                try:
                    params = log_params(q)
                except ValueError as e:
                    return self.text(400, f'invalid parameter: {e}')
                self.send_response(200)
                self.send_header('Content-Type', 'text/plain')
                self.end_headers()
                try:
                    for b in iter_log(agent.kubelet.lock, log, params):
                        self.wfile.write(b)
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError, OSError):
                    pass

        srv = ThreadingHTTPServer(('127.0.0.1', self.args.port), Handler)
        srv.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.args.cert, self.args.key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        return srv


def main():
    ap = argparse.ArgumentParser(description='kiln sim-kubelet: simulated scheduler + kubelet for a real apiserver')
    ap.add_argument('--kubeconfig', default=os.environ.get('KUBECONFIG'))
    ap.add_argument('--node-name', default='fake-node')
    ap.add_argument('--port', type=int, default=int(os.environ.get('FAKE_KUBELET_PORT', '10250')))
    ap.add_argument('--cert', required=True)
    ap.add_argument('--key', required=True)
    ap.add_argument('--node-gpus', type=int, default=2)
    ap.add_argument('--node-cpu', default='8')
    ap.add_argument('--node-memory', default='16Gi')
    ap.add_argument('--delay', type=float, default=0.05)
    ap.add_argument('--pidfile')
    ap.add_argument('--verbose', action='store_true')
    args = ap.parse_args()
    if not args.kubeconfig:
        ap.error('--kubeconfig (or KUBECONFIG) is required')
    agent = Agent(args)
    srv = agent.make_server()
    agent.register()
    if args.pidfile:
        with open(args.pidfile + '.tmp', 'w') as f:
            f.write(f'{os.getpid()}\n')
        os.replace(args.pidfile + '.tmp', args.pidfile)

    def stop(*_):
        agent.kubelet.kill_all()
        os._exit(0)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=agent.heartbeats, daemon=True).start()
    threading.Thread(target=agent.watch_pods, daemon=True).start()
    say(f'node {args.node_name}, logs on https://127.0.0.1:{args.port}')
    srv.serve_forever()


if __name__ == '__main__':
    main()
