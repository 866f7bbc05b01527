#!/usr/bin/env python3
"""kube-sim: a stand-in Kubernetes API server for kiln's tests (stdlib only).

Speaks the real REST + watch protocol for pods (v1) in namespaces:
  POST   /api/v1/namespaces/NS/pods                      create (201; 409 AlreadyExists; 422 Invalid)
  GET    /api/v1/namespaces/NS/pods[?labelSelector&fieldSelector&limit&continue&resourceVersion]
  GET    /api/v1/pods                                    all namespaces
  GET    ...pods?watch=1&resourceVersion=RV&allowWatchBookmarks=true&timeoutSeconds=N
         chunked NDJSON {"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": ...};
         an RV older than the kept history -> HTTP 200 with one ERROR event (Status 410 Expired)
  GET    /api/v1/namespaces/NS/pods/NAME                 404 NotFound
  PATCH  /api/v1/namespaces/NS/pods/NAME                 merge patch of metadata labels/annotations
  PATCH  /api/v1/namespaces/NS/pods/NAME/status          merge patch of status
  DELETE /api/v1/namespaces/NS/pods/NAME                 gracePeriodSeconds, preconditions.uid (409)
  GET    /api/v1/namespaces/NS/pods/NAME/log             follow, timestamps, sinceTime, sinceSeconds,
                                                         tailLines, limitBytes, container
  GET    /api/v1/nodes[/NAME]                            the simulated nodes (read only)
The simulated scheduler + kubelet of kubelet_core.py (the same code sim-kubelet.py runs
against a real apiserver) binds each pod to a node that fits (nodeSelector, GPUs, cpu,
memory) or marks it Unschedulable, runs the first container's command (+args) as a local
process (env, $(VAR), an existing workingDir), serves its stdout+stderr as the log, and
sets phase/conditions/containerStatuses like the kubelet: InvalidImageName and
ErrImagePull/ImagePullBackOff for bad or *.invalid images, OOMKilled over limits.memory,
the termination message, DeadlineExceeded, SIGTERM/grace/SIGKILL on graceful delete.

Control endpoints (not Kubernetes):
  POST /_sim/faults   JSON, any of:
     {"http_429": {"count": N, "retry_after": S, "method": "POST", "path": "substring"},
      "http_500": {"count": N, ...same filters},
      "drop_watches": true,             close every open watch without the final chunk
      "drop_logs": true,                close every open log follow without the final chunk
      "force_410": N,                   the next N watches (with an RV) get the 410 ERROR event
      "pod": {"fault": F, "name": "...", "labelSelector": "...", "count": 1, "message": "...",
              "after": seconds}}        for the next pod(s) created that match:
         F = image_pull | oom | unschedulable | evicted | delete | start_error
  POST /_sim/compact  forget the event history (every older RV becomes 410)
  POST /_sim/delete   {"namespace": NS, "name": N} remove a pod at once, behind the client's back
  GET  /_sim/stats    request counts
  POST /_sim/reset    clear faults

Start: kube-sim.py [--port 0] [--port-file F] [--nodes 3] [--node-gpus 8] [--node-cpu 64]
       [--node-memory 256Gi] [--node-labels k=v,...] [--token T] [--manual]
       [--strict-pod-names] [--bookmark-interval S] [--history N]
It prints "kube-sim listening on http://127.0.0.1:PORT" on stdout.
"""
import argparse
import base64
import copy
import json
import os
import re
import signal
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import objects  # Deployments and Services (tests/kube-sim/objects.py)
from kubelet_core import Kubelet, iter_log, log_params, now_rfc3339, peek_of, qty_value

# ---------------------------------------------------------------- validation
DNS1123_LABEL = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')
DNS1123_SUB = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')
LABEL_VALUE = re.compile(r'^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$')
QUALIFIED_NAME = re.compile(r'^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$')
QUANTITY = re.compile(r'^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$')
ENV_NAME = re.compile(r'^[-._a-zA-Z][-._a-zA-Z0-9]*$')

MSG_SUB = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
           "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
           "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
MSG_LABEL = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
             "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
             "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
MSG_LVALUE = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
              "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
              "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
MSG_QNAME = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
             "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
             "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
MSG_QTY = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"


class Errs:
    def __init__(self):
        self.causes = []

    def add(self, field, kind, value=None, detail=''):
        if kind == 'Required':
            msg = f'{field}: Required value' + (f': {detail}' if detail else '')
            reason = 'FieldValueRequired'
        elif kind == 'Unsupported':
            msg = f'{field}: Unsupported value: {json.dumps(value)}: {detail}'
            reason = 'FieldValueNotSupported'
        elif kind == 'Duplicate':
            msg = f'{field}: Duplicate value: {json.dumps(value)}'
            reason = 'FieldValueDuplicate'
        elif kind == 'Forbidden':
            msg = f'{field}: Forbidden: {detail}'
            reason = 'FieldValueForbidden'
        elif kind == 'NotFound':
            msg = f'{field}: Not found: {json.dumps(value)}'
            reason = 'FieldValueNotFound'
        elif kind == 'TooLong':
            msg = f'{field}: Too long: {detail}'
            reason = 'FieldValueTooLong'
        else:
            msg = f'{field}: Invalid value: {json.dumps(value)}: {detail}'
            reason = 'FieldValueInvalid'
        self.causes.append({'reason': reason, 'message': msg, 'field': field})


def check_label_key(errs, field, k):
    prefix, _, name = k.rpartition('/')
    if '/' in k:
        if not prefix or len(prefix) > 253 or not DNS1123_SUB.match(prefix):
            errs.add(field, 'Invalid', k, 'prefix part ' + MSG_SUB)
    if not name or len(name) > 63 or not QUALIFIED_NAME.match(name):
        errs.add(field, 'Invalid', k, MSG_QNAME if name and len(name) <= 63 else
                 'name part must be no more than 63 characters' if name else 'name part must be non-empty')


def validate_meta(errs, meta, strict_names):
    name = meta.get('name')
    if not name:
        if not meta.get('generateName'):
            errs.add('metadata.name', 'Required', detail='name or generateName is required')
    elif strict_names:
        if len(name) > 63 or not DNS1123_LABEL.match(name):
            errs.add('metadata.name', 'Invalid', name,
                     'must be no more than 63 characters' if len(name) > 63 else MSG_LABEL)
    elif len(name) > 253 or not DNS1123_SUB.match(name):
        errs.add('metadata.name', 'Invalid', name,
                 'must be no more than 253 characters' if len(name) > 253 else MSG_SUB)
    for k, v in (meta.get('labels') or {}).items():
        check_label_key(errs, 'metadata.labels', k)
        if not isinstance(v, str) or len(v) > 63 or not LABEL_VALUE.match(v):
            errs.add('metadata.labels', 'Invalid', v,
                     'must be no more than 63 characters' if isinstance(v, str) and len(v) > 63 else MSG_LVALUE)
    ann = meta.get('annotations') or {}
    for k in ann:
        check_label_key(errs, 'metadata.annotations', k)
    if sum(len(k) + len(str(v)) for k, v in ann.items()) > 256 * 1024:
        errs.add('metadata.annotations', 'TooLong', detail='must have at most 262144 bytes')


def validate_resources(errs, field, res):
    vals = {}
    for kind in ('limits', 'requests'):
        for rname, q in (res.get(kind) or {}).items():
            f = f'{field}.{kind}[{rname}]'
            if not isinstance(q, (str, int, float)) or not QUANTITY.match(str(q)):
                errs.add(f, 'Invalid', q, MSG_QTY)
                continue
            v = qty_value(str(q))
            if v < 0:
                errs.add(f, 'Invalid', str(q), 'must be greater than or equal to 0')
                continue
            if '/' in rname and not rname.startswith('kubernetes.io/') and v != v.to_integral_value():
                errs.add(f, 'Invalid', str(q), 'must be an integer')
                continue
            vals[(kind, rname)] = v
    for (kind, rname), v in vals.items():
        if kind != 'requests':
            continue
        lim = vals.get(('limits', rname))
        if lim is None:
            continue
        if '/' in rname and not rname.startswith('kubernetes.io/') and lim != v:
            errs.add(f'{field}.requests[{rname}]', 'Invalid', str(res['requests'][rname]),
                     f'must be equal to {rname} limit of {res["limits"][rname]}')
        elif v > lim:
            errs.add(f'{field}.requests', 'Invalid', str(res['requests'][rname]),
                     f'must be less than or equal to {rname} limit of {res["limits"][rname]}')


def validate_pod(pod, strict_names):
    errs = Errs()
    validate_meta(errs, pod.get('metadata') or {}, strict_names)
    spec = pod.get('spec')
    if not isinstance(spec, dict):
        errs.add('spec', 'Required')
        return errs.causes
    rp = spec.get('restartPolicy', 'Always')
    if rp not in ('Always', 'OnFailure', 'Never'):
        errs.add('spec.restartPolicy', 'Unsupported', rp, 'supported values: "Always", "OnFailure", "Never"')
    ads = spec.get('activeDeadlineSeconds')
    if ads is not None and (not isinstance(ads, int) or ads < 1):
        errs.add('spec.activeDeadlineSeconds', 'Invalid', ads, 'must be between 1 and 2147483647, inclusive')
    vols = {}
    for i, v in enumerate(spec.get('volumes') or []):
        f = f'spec.volumes[{i}]'
        n = v.get('name')
        if not n:
            errs.add(f + '.name', 'Required')
        elif not DNS1123_LABEL.match(n) or len(n) > 63:
            errs.add(f + '.name', 'Invalid', n, MSG_LABEL)
        elif n in vols:
            errs.add(f + '.name', 'Duplicate', n)
        srcs = [k for k in v if k != 'name']
        if len(srcs) != 1:
            errs.add(f, 'Required', detail='must specify a volume type') if not srcs else \
                errs.add(f, 'Forbidden', detail='may not specify more than 1 volume type')
        vols[n] = v
    for k, val in (spec.get('nodeSelector') or {}).items():
        check_label_key(errs, 'spec.nodeSelector', k)
        if not LABEL_VALUE.match(str(val)) or len(str(val)) > 63:
            errs.add('spec.nodeSelector', 'Invalid', val, MSG_LVALUE)
    for i, t in enumerate(spec.get('tolerations') or []):
        f = f'spec.tolerations[{i}]'
        op = t.get('operator', 'Equal')
        if op not in ('Exists', 'Equal'):
            errs.add(f + '.operator', 'Unsupported', op, 'supported values: "Equal", "Exists"')
        if op == 'Exists' and t.get('value'):
            errs.add(f + '.operator', 'Invalid', op, 'value must be empty when `operator` is \'Exists\'')
        eff = t.get('effect')
        if eff and eff not in ('NoSchedule', 'PreferNoSchedule', 'NoExecute'):
            errs.add(f + '.effect', 'Unsupported', eff,
                     'supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"')
        if t.get('tolerationSeconds') is not None and eff != 'NoExecute':
            errs.add(f + '.effect', 'Invalid', eff,
                     'effect must be \'NoExecute\' when `tolerationSeconds` is set')
    ctrs = spec.get('containers')
    if not ctrs:
        errs.add('spec.containers', 'Required')
        ctrs = []
    seen = set()
    for i, c in enumerate(ctrs):
        f = f'spec.containers[{i}]'
        n = c.get('name')
        if not n:
            errs.add(f + '.name', 'Required')
        elif not DNS1123_LABEL.match(n) or len(n) > 63:
            errs.add(f + '.name', 'Invalid', n, MSG_LABEL)
        elif n in seen:
            errs.add(f + '.name', 'Duplicate', n)
        seen.add(n)
        if not c.get('image'):
            errs.add(f + '.image', 'Required')
        ipp = c.get('imagePullPolicy')
        if ipp is not None and ipp not in ('Always', 'IfNotPresent', 'Never'):
            errs.add(f + '.imagePullPolicy', 'Unsupported', ipp,
                     'supported values: "Always", "IfNotPresent", "Never"')
        for j, e in enumerate(c.get('env') or []):
            en = e.get('name')
            if not en:
                errs.add(f'{f}.env[{j}].name', 'Required')
            elif not ENV_NAME.match(en):
                errs.add(f'{f}.env[{j}].name', 'Invalid', en,
                         "a valid environment variable name must consist of alphabetic characters, digits, '_', "
                         "'-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or "
                         "'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')")
        validate_resources(errs, f + '.resources', c.get('resources') or {})
        for j, m in enumerate(c.get('volumeMounts') or []):
            if not m.get('mountPath'):
                errs.add(f'{f}.volumeMounts[{j}].mountPath', 'Required')
            if m.get('name') not in vols:
                errs.add(f'{f}.volumeMounts[{j}].name', 'NotFound', m.get('name'))
        wd = c.get('workingDir')
        if wd is not None and not isinstance(wd, str):
            errs.add(f + '.workingDir', 'Invalid', wd, 'must be a string')
    return errs.causes


# ---------------------------------------------------------------- label selectors
def parse_selector(s):
    """-> list of (key, op, values); op in =, !=, exists, !exists, in, notin."""
    reqs = []
    if not s:
        return reqs
    parts, depth, cur = [], 0, ''
    for ch in s:
        if ch == '(':
            depth += 1
        elif ch == ')':
            depth -= 1
        if ch == ',' and depth == 0:
            parts.append(cur)
            cur = ''
        else:
            cur += ch
    parts.append(cur)
    for p in parts:
        p = p.strip()
        if not p:
            continue
        m = re.match(r'^(\S+)\s+(in|notin)\s*\((.*)\)$', p)
        if m:
            reqs.append((m.group(1), m.group(2), {v.strip() for v in m.group(3).split(',') if v.strip()}))
        elif '!=' in p:
            k, v = p.split('!=', 1)
            reqs.append((k.strip(), '!=', {v.strip()}))
        elif '==' in p:
            k, v = p.split('==', 1)
            reqs.append((k.strip(), '=', {v.strip()}))
        elif '=' in p:
            k, v = p.split('=', 1)
            reqs.append((k.strip(), '=', {v.strip()}))
        elif p.startswith('!'):
            reqs.append((p[1:].strip(), '!exists', set()))
        else:
            reqs.append((p, 'exists', set()))
    for k, _, vals in reqs:
        bad = [k] if not re.match(r'^([a-z0-9.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$', k) else []
        if bad or any(not LABEL_VALUE.match(v) for v in vals):
            raise ValueError(f'unable to parse requirement: invalid label selector "{s}"')
    return reqs


def match_labels(reqs, labels):
    for k, op, vals in reqs:
        has = k in labels
        v = labels.get(k)
        if op == '=' and (not has or v not in vals):
            return False
        if op == '!=' and has and v in vals:
            return False
        if op == 'exists' and not has:
            return False
        if op == '!exists' and has:
            return False
        if op == 'in' and (not has or v not in vals):
            return False
        if op == 'notin' and has and v in vals:
            return False
    return True


FIELDS = {'metadata.name': lambda p: p['metadata']['name'],
          'metadata.namespace': lambda p: p['metadata']['namespace'],
          'spec.nodeName': lambda p: p['spec'].get('nodeName', ''),
          'spec.restartPolicy': lambda p: p['spec'].get('restartPolicy', ''),
          'status.phase': lambda p: p.get('status', {}).get('phase', '')}


def parse_fields(s):
    out = []
    for p in (s or '').split(','):
        if not p:
            continue
        op = '!=' if '!=' in p else '='
        k, v = re.split(r'!=|==|=', p, maxsplit=1)
        if k not in FIELDS:
            raise ValueError(f'"{k}" is not a known field selector: only "metadata.name", "metadata.namespace"')
        out.append((k, op, v))
    return out


def match_fields(reqs, pod):
    return all((FIELDS[k](pod) == v) == (op == '=') for k, op, v in reqs)


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        else:
            target[k] = merge_patch(target.get(k), v)
    return target


def status_obj(code, reason, message, details=None):
    o = {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Failure',
         'message': message, 'reason': reason, 'code': code}
    if details:
        o['details'] = details
    return o


# ---------------------------------------------------------------- the store
class Sim:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Condition()
        self.rv = 1
        self.pods = {}           # (ns, name) -> pod
        self.events = []         # (rv, type, obj, prev_obj)
        self.floor = 0           # RVs <= floor are too old (410)
        self.nodes = [{'name': f'sim-node-{i}',
                       'labels': dict({'kubernetes.io/hostname': f'sim-node-{i}', 'kubernetes.io/os': 'linux',
                                       'kubernetes.io/arch': 'amd64'},
                                      **({'nvidia.com/gpu.present': 'true'} if args.node_gpus else {}),
                                      **dict(kv.split('=', 1) for kv in (args.node_labels or '').split(',') if kv)),
                       'allocatable': {'cpu': qty_value(args.node_cpu), 'memory': qty_value(args.node_memory),
                                       'pods': Decimal(110), 'nvidia.com/gpu': Decimal(args.node_gpus)},
                       'unschedulable': False} for i in range(args.nodes)]
        self.started = now_rfc3339()
        self.kubelet = Kubelet(SimBackend(self), self.lock, delay=args.schedule_delay)
        self.logs = self.kubelet.logs    # uid -> PodLog
        self.faults = {'http_429': None, 'http_500': None, 'force_410': 0, 'pod': []}
        self.watch_gen = 0       # bumped by drop_watches
        self.log_gen = 0         # bumped by drop_logs
        self.stats = {'requests': 0, 'watches': 0, 'creates': 0, 'http_429': 0, 'http_500': 0}

    # -- called with the lock held
    def emit(self, typ, pod, prev=None):
        self.rv += 1
        pod['metadata']['resourceVersion'] = str(self.rv)
        self.events.append((self.rv, typ, copy.deepcopy(pod), copy.deepcopy(prev) if prev else None))
        if self.args.history and len(self.events) > self.args.history:
            drop = len(self.events) - self.args.history
            self.floor = self.events[drop - 1][0]
            del self.events[:drop]
        self.lock.notify_all()

    def update(self, ns, name, fn):
        """fn(pod) mutates; emits MODIFIED.  Returns the pod or None."""
        with self.lock:
            pod = self.pods.get((ns, name))
            if not pod:
                return None
            prev = copy.deepcopy(pod)
            fn(pod)
            self.emit('MODIFIED', pod, prev)
            return copy.deepcopy(pod)

    def remove(self, ns, name, uid=None):
        """Removes the object at once; the kubelet notices and kills what runs."""
        with self.lock:
            pod = self.pods.get((ns, name))
            if not pod or (uid and pod['metadata']['uid'] != uid):
                return
            del self.pods[(ns, name)]
            self.emit('DELETED', pod)
        self.kubelet.forget(pod['metadata']['uid'])

    def take_pod_fault(self, pod):
        with self.lock:
            for f in self.faults['pod']:
                if f.get('name') and f['name'] != pod['metadata']['name']:
                    continue
                if f.get('labelSelector') and not match_labels(parse_selector(f['labelSelector']),
                                                               pod['metadata'].get('labels', {})):
                    continue
                f['count'] = f.get('count', 1) - 1
                if f['count'] <= 0:
                    self.faults['pod'].remove(f)
                return f
        return None

    def node_obj(self, n):
        alloc = {k: str(int(v)) if v == v.to_integral_value() else str(v) for k, v in n['allocatable'].items()}
        return {'kind': 'Node', 'apiVersion': 'v1',
                'metadata': {'name': n['name'], 'labels': dict(n['labels']), 'resourceVersion': '1',
                             'uid': str(uuid.uuid5(uuid.NAMESPACE_DNS, n['name'])), 'creationTimestamp': self.started},
                'spec': {'unschedulable': True} if n['unschedulable'] else {},
                'status': {'capacity': dict(alloc), 'allocatable': alloc,
                           'addresses': [{'type': 'InternalIP', 'address': '127.0.0.1'},
                                         {'type': 'Hostname', 'address': n['name']}],
                           'conditions': [{'type': 'Ready', 'status': 'True', 'reason': 'KubeletReady',
                                           'message': 'kubelet is posting ready status',
                                           'lastHeartbeatTime': now_rfc3339(),
                                           'lastTransitionTime': self.started}],
                           'nodeInfo': {'kubeletVersion': 'v1.20.2-sim', 'operatingSystem': 'linux',
                                        'architecture': 'amd64'}}}


class SimBackend:
    """kubelet_core's view of the in-process store."""
    def __init__(self, sim):
        self.sim = sim

    def get(self, ns, name):
        with self.sim.lock:
            return copy.deepcopy(self.sim.pods.get((ns, name)))

    def peek(self, ns, name):
        with self.sim.lock:
            return peek_of(self.sim.pods.get((ns, name)))

    def _update(self, ns, name, uid, fn):
        with self.sim.lock:
            pod = self.sim.pods.get((ns, name))
            if not pod or pod['metadata']['uid'] != uid:
                return False
            prev = copy.deepcopy(pod)
            fn(pod)
            self.sim.emit('MODIFIED', pod, prev)
            return True

    def bind(self, ns, name, uid, node):
        def f(p):
            p['spec']['nodeName'] = node
            p['status']['conditions'] = [c for c in p['status'].get('conditions') or []
                                         if c['type'] != 'PodScheduled'] + [
                {'type': 'PodScheduled', 'status': 'True', 'lastProbeTime': None,
                 'lastTransitionTime': now_rfc3339()}]
        return self._update(ns, name, uid, f)

    def patch_status(self, ns, name, uid, st):
        return self._update(ns, name, uid, lambda p: p.__setitem__(
            'status', merge_patch(p.get('status') or {}, copy.deepcopy(st))))

    def delete_now(self, ns, name, uid):
        self.sim.remove(ns, name, uid)

    def nodes(self):
        with self.sim.lock:
            return copy.deepcopy(self.sim.nodes)

    def take_fault(self, pod):
        return self.sim.take_pod_fault(pod)


# ---------------------------------------------------------------- HTTP
POD_PATH = re.compile(r'^/api/v1/namespaces/([^/]+)/pods(?:/([^/]+)(?:/(status|log))?)?$')


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    sim = None

    def log_message(self, fmt, *a):
        if self.sim.args.verbose:
            sys.stderr.write('kube-sim: ' + fmt % a + '\n')

    # -- helpers
    def send_json(self, code, obj, headers=None):
        body = (json.dumps(obj) + '\n').encode()
        self.send_response(code)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def send_status(self, code, reason, message, details=None, headers=None):
        self.send_json(code, status_obj(code, reason, message, details), headers)

    def read_body(self):
        n = int(self.headers.get('Content-Length') or 0)
        raw = self.rfile.read(n) if n else b''
        return raw

    def chunk(self, data):
        self.wfile.write(b'%x\r\n%s\r\n' % (len(data), data))
        self.wfile.flush()

    def start_chunked(self, ctype):
        self.send_response(200)
        self.send_header('Content-Type', ctype)
        self.send_header('Transfer-Encoding', 'chunked')
        self.end_headers()

    def injected(self):
        """Applies request faults; True if a response was sent."""
        sim = self.sim
        with sim.lock:
            sim.stats['requests'] += 1
            for key, code, reason in (('http_429', 429, 'TooManyRequests'), ('http_500', 500, 'InternalError')):
                f = sim.faults[key]
                if not f or f.get('count', 0) <= 0:
                    continue
                if f.get('method') and f['method'] != self.command:
                    continue
                if f.get('path') and f['path'] not in self.path:
                    continue
                f['count'] -= 1
                sim.stats[key] += 1
                hdr = {'Retry-After': str(f.get('retry_after', 1))} if code == 429 else None
                msg = 'Too many requests, please try again later.' if code == 429 else \
                    'Internal error occurred: etcdserver: request timed out'
                break
            else:
                return False
        # The request's body must be read even when it is refused, or it
        # stays in the kept-alive connection as the start of the next request.
        self.read_body()
        self.send_status(code, reason, msg, {'retryAfterSeconds': int(hdr['Retry-After'])} if hdr else None, hdr)
        return True

    def authorized(self):
        tok = self.sim.args.token
        if tok and self.headers.get('Authorization') != f'Bearer {tok}':
            self.read_body()
            self.send_status(401, 'Unauthorized', 'Unauthorized')
            return False
        return True

    def route(self):
        if objects.handle(self):
            return
        u = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
        if u.path.startswith('/_sim/'):
            return self.control(u.path, q)
        if not self.authorized() or self.injected():
            return
        if u.path in ('/healthz', '/readyz', '/livez'):
            body = b'ok'
            self.send_response(200)
            self.send_header('Content-Length', '2')
            self.end_headers()
            self.wfile.write(body)
            return
        if u.path.startswith('/api/v1/nodes') and self.command == 'GET':
            return self.get_nodes(u.path[len('/api/v1/nodes'):].strip('/'))
        if u.path == '/api/v1/pods' and self.command == 'GET':
            return self.watch(None, q) if q.get('watch') in ('1', 'true') else self.list(None, q)
        m = POD_PATH.match(u.path)
        if not m:
            return self.send_status(404, 'NotFound', 'the server could not find the requested resource')
        ns, name, sub = m.groups()
        cmd = self.command
        if name is None:
            if cmd == 'POST':
                return self.create(ns, q)
            if cmd == 'GET':
                return self.watch(ns, q) if q.get('watch') in ('1', 'true') else self.list(ns, q)
        elif sub is None:
            if cmd == 'GET':
                return self.get(ns, name)
            if cmd == 'DELETE':
                return self.delete(ns, name, q)
            if cmd == 'PATCH':
                return self.patch(ns, name, False)
        elif sub == 'status':
            if cmd == 'GET':
                return self.get(ns, name)
            if cmd == 'PATCH':
                return self.patch(ns, name, True)
        elif sub == 'log' and cmd == 'GET':
            return self.log(ns, name, q)
        self.send_status(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource')

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = lambda self: self.route()

    def not_found(self, name):
        self.send_status(404, 'NotFound', f'pods "{name}" not found',
                         {'name': name, 'kind': 'pods'})

    def get_nodes(self, name):
        sim = self.sim
        with sim.lock:
            nodes = [sim.node_obj(n) for n in sim.nodes]
            rv = str(sim.rv)
        if not name:
            return self.send_json(200, {'kind': 'NodeList', 'apiVersion': 'v1', 'metadata': {'resourceVersion': rv},
                                        'items': nodes})
        for n in nodes:
            if n['metadata']['name'] == name:
                return self.send_json(200, n)
        self.send_status(404, 'NotFound', f'nodes "{name}" not found', {'name': name, 'kind': 'nodes'})

    # -- pods
    def create(self, ns, q):
        sim = self.sim
        try:
            pod = json.loads(self.read_body() or b'null')
            assert isinstance(pod, dict)
        except (ValueError, AssertionError):
            return self.send_status(400, 'BadRequest', 'the object provided is unrecognized or malformed')
        if pod.get('kind') not in (None, 'Pod') or pod.get('apiVersion') not in (None, 'v1'):
            return self.send_status(400, 'BadRequest', f'the API version in the data ({pod.get("apiVersion")}) '
                                    'does not match the expected API version (v1)')
        meta = pod.setdefault('metadata', {})
        if meta.get('namespace') and meta['namespace'] != ns:
            return self.send_status(400, 'BadRequest', 'the namespace of the provided object does not match '
                                    'the namespace sent on the request')
        if not meta.get('name') and meta.get('generateName'):
            meta['name'] = meta['generateName'] + uuid.uuid4().hex[:5]
        causes = validate_pod(pod, sim.args.strict_pod_names)
        name = meta.get('name') or ''
        if causes:
            msg = f'Pod "{name}" is invalid: ' + (causes[0]['message'] if len(causes) == 1 else
                                                  '[' + ', '.join(c['message'] for c in causes) + ']')
            return self.send_status(422, 'Invalid', msg, {'name': name, 'kind': 'Pod', 'causes': causes})
        if q.get('dryRun') == 'All':
            return self.send_json(201, pod)
        with sim.lock:
            if (ns, name) in sim.pods:
                return self.send_status(409, 'AlreadyExists', f'pods "{name}" already exists',
                                        {'name': name, 'kind': 'pods'})
            uid = str(uuid.uuid4())
            meta.update({'namespace': ns, 'uid': uid, 'creationTimestamp': now_rfc3339()})
            meta.pop('resourceVersion', None)
            spec = pod['spec']
            spec.setdefault('restartPolicy', 'Always')
            spec.setdefault('schedulerName', 'default-scheduler')
            spec.setdefault('terminationGracePeriodSeconds', 30)
            spec.setdefault('dnsPolicy', 'ClusterFirst')
            for c in spec['containers']:
                c.setdefault('terminationMessagePath', '/dev/termination-log')
                c.setdefault('terminationMessagePolicy', 'File')
                c.setdefault('imagePullPolicy', 'Always' if c['image'].endswith(':latest') or ':' not in
                             c['image'].rsplit('/', 1)[-1] else 'IfNotPresent')
                c.setdefault('resources', {})
            pod['status'] = {'phase': 'Pending', 'qosClass': 'BestEffort'}
            sim.pods[(ns, name)] = pod
            sim.kubelet.log(uid)
            sim.stats['creates'] += 1
            sim.emit('ADDED', pod)
            out = copy.deepcopy(pod)
        if not sim.args.manual:
            threading.Thread(target=sim.kubelet.schedule_and_run, args=(ns, name, uid), daemon=True).start()
        self.send_json(201, out)

    def get(self, ns, name):
        with self.sim.lock:
            pod = copy.deepcopy(self.sim.pods.get((ns, name)))
        if not pod:
            return self.not_found(name)
        self.send_json(200, pod)

    def list(self, ns, q):
        sim = self.sim
        try:
            lsel = parse_selector(q.get('labelSelector'))
            fsel = parse_fields(q.get('fieldSelector'))
        except ValueError as e:
            return self.send_status(400, 'BadRequest', str(e))
        rv = q.get('resourceVersion')
        with sim.lock:
            if rv and rv != '0' and q.get('resourceVersionMatch') == 'Exact' and int(rv) <= sim.floor:
                return self.send_status(410, 'Expired', f'too old resource version: {rv} ({sim.rv})')
            items = sorted((copy.deepcopy(p) for (n, _), p in sim.pods.items() if ns is None or n == ns),
                           key=lambda p: (p['metadata']['namespace'], p['metadata']['name']))
            cur = str(sim.rv)
        items = [p for p in items if match_labels(lsel, p['metadata'].get('labels', {})) and match_fields(fsel, p)]
        meta = {'resourceVersion': cur}
        cont = q.get('continue')
        if cont:
            try:
                after = json.loads(base64.b64decode(cont))['start']
            except (ValueError, KeyError):
                return self.send_status(400, 'BadRequest', 'continue key is not valid')
            items = [p for p in items if (p['metadata']['namespace'] + '/' + p['metadata']['name']) > after]
        limit = int(q.get('limit') or 0)
        if limit and len(items) > limit:
            last = items[limit - 1]['metadata']
            meta['continue'] = base64.b64encode(json.dumps(
                {'start': last['namespace'] + '/' + last['name'], 'rv': cur}).encode()).decode()
            meta['remainingItemCount'] = len(items) - limit
            items = items[:limit]
        for p in items:
            p.pop('apiVersion', None)
            p.pop('kind', None)
        self.send_json(200, {'kind': 'PodList', 'apiVersion': 'v1', 'metadata': meta, 'items': items})

    def watch(self, ns, q):
        sim = self.sim
        try:
            lsel = parse_selector(q.get('labelSelector'))
            fsel = parse_fields(q.get('fieldSelector'))
        except ValueError as e:
            return self.send_status(400, 'BadRequest', str(e))
        rv = q.get('resourceVersion') or ''
        bookmarks = q.get('allowWatchBookmarks') in ('1', 'true')
        timeout = float(q.get('timeoutSeconds') or sim.args.watch_timeout)
        end = time.time() + timeout

        def sel(p):
            return p is not None and (ns is None or p['metadata']['namespace'] == ns) and \
                match_labels(lsel, p['metadata'].get('labels', {})) and match_fields(fsel, p)

        with sim.lock:
            sim.stats['watches'] += 1
            gen = sim.watch_gen
            too_old = False
            if rv not in ('', '0'):
                if sim.faults['force_410'] > 0:
                    sim.faults['force_410'] -= 1
                    too_old = True
                elif not rv.isdigit() or int(rv) < sim.floor:
                    too_old = True
            pending = []
            if not too_old:
                if rv in ('', '0'):
                    for p in sorted(sim.pods.values(), key=lambda p: int(p['metadata']['resourceVersion'])):
                        if sel(p):
                            pending.append({'type': 'ADDED', 'object': copy.deepcopy(p)})
                    last = sim.rv
                else:
                    last = int(rv)
        self.start_chunked('application/json')
        if too_old:
            self.chunk((json.dumps({'type': 'ERROR', 'object': status_obj(
                410, 'Expired', 'The resourceVersion for the provided watch is too old.')}) + '\n').encode())
            self.chunk(b'')
            return
        last_bookmark = time.time()
        try:
            while True:
                for ev in pending:
                    self.chunk((json.dumps(ev) + '\n').encode())
                pending = []
                with sim.lock:
                    while True:
                        if sim.watch_gen != gen:
                            # drop: close the socket without the last chunk
                            self.close_connection = True
                            self.wfile.flush()
                            self.connection.shutdown(2)
                            return
                        new = [e for e in sim.events if e[0] > last]
                        if new or time.time() >= end:
                            break
                        if bookmarks and time.time() - last_bookmark >= sim.args.bookmark_interval:
                            break
                        sim.lock.wait(0.1)
                    for erv, typ, obj, prev in new:
                        last = erv
                        now_in, was_in = sel(obj), sel(prev) if prev is not None else None
                        if typ == 'MODIFIED' and was_in is not None and now_in != was_in:
                            typ = 'ADDED' if now_in else 'DELETED'
                            if typ == 'DELETED':
                                obj = dict(prev, metadata=dict(prev['metadata'], resourceVersion=str(erv)))
                        elif not now_in:
                            continue
                        pending.append({'type': typ, 'object': obj})
                    if not new and bookmarks and time.time() - last_bookmark >= sim.args.bookmark_interval:
                        last = max(last, sim.rv)
                        pending.append({'type': 'BOOKMARK', 'object': {
                            'kind': 'Pod', 'apiVersion': 'v1', 'metadata': {'resourceVersion': str(last)}}})
                        last_bookmark = time.time()
                if not pending and time.time() >= end:
                    break
            self.chunk(b'')
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    def patch(self, ns, name, status):
        ctype = (self.headers.get('Content-Type') or '').split(';')[0].strip()
        raw = self.read_body()
        if ctype not in ('application/merge-patch+json', 'application/strategic-merge-patch+json'):
            return self.send_status(415, 'UnsupportedMediaType',
                                    'the body of the request was in an unknown format - accepted media types '
                                    'include: application/json-patch+json, application/merge-patch+json, '
                                    'application/apply-patch+yaml')
        try:
            patch = json.loads(raw)
            assert isinstance(patch, dict)
        except (ValueError, AssertionError):
            return self.send_status(400, 'BadRequest', 'error decoding patch')
        with self.sim.lock:
            pod = self.sim.pods.get((ns, name))
            if not pod:
                return self.not_found(name)
            if status:
                newst = merge_patch(copy.deepcopy(pod.get('status', {})), patch.get('status', {}))
                causes = []
            else:
                if 'spec' in patch:
                    c = {'reason': 'FieldValueForbidden', 'field': 'spec',
                         'message': 'spec: Forbidden: pod updates may not change fields other than '
                                    '`spec.containers[*].image`, `spec.initContainers[*].image`, '
                                    '`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing '
                                    'tolerations) or `spec.terminationGracePeriodSeconds` (allow it to be set to 1 '
                                    'if it was previously negative)'}
                    return self.send_status(422, 'Invalid', f'Pod "{name}" is invalid: {c["message"]}',
                                            {'name': name, 'kind': 'Pod', 'causes': [c]})
                newmeta = copy.deepcopy(pod['metadata'])
                for k in ('labels', 'annotations'):
                    if k in (patch.get('metadata') or {}):
                        newmeta[k] = merge_patch(newmeta.get(k) or {}, patch['metadata'][k]) or {}
                e = Errs()
                validate_meta(e, newmeta, False)
                causes = e.causes
            if causes:
                return self.send_status(422, 'Invalid', f'Pod "{name}" is invalid: {causes[0]["message"]}',
                                        {'name': name, 'kind': 'Pod', 'causes': causes})
            prev = copy.deepcopy(pod)
            if status:
                pod['status'] = newst
            else:
                pod['metadata'] = newmeta
            self.sim.emit('MODIFIED', pod, prev)
            out = copy.deepcopy(pod)
        self.send_json(200, out)

    def delete(self, ns, name, q):
        sim = self.sim
        raw = self.read_body()
        opts = {}
        if raw:
            try:
                opts = json.loads(raw)
            except ValueError:
                return self.send_status(400, 'BadRequest', 'error decoding DeleteOptions')
        grace = q.get('gracePeriodSeconds', opts.get('gracePeriodSeconds'))
        uid = (opts.get('preconditions') or {}).get('uid')
        with sim.lock:
            pod = sim.pods.get((ns, name))
            if not pod:
                return self.not_found(name)
            if uid and pod['metadata']['uid'] != uid:
                return self.send_status(409, 'Conflict', f'Operation cannot be fulfilled on Pod "{name}": '
                                        f'Precondition failed: UID in precondition: {uid}, UID in object meta: '
                                        f'{pod["metadata"]["uid"]}', {'name': name, 'kind': 'pods'})
            grace = int(grace if grace is not None else pod['spec'].get('terminationGracePeriodSeconds', 30))
            bound = bool(pod['spec'].get('nodeName'))
            phase = pod['status'].get('phase')
            now_gone = grace == 0 or not bound or phase in ('Succeeded', 'Failed') or sim.args.manual
            if not now_gone:
                if not pod['metadata'].get('deletionTimestamp'):
                    prev = copy.deepcopy(pod)
                    pod['metadata']['deletionTimestamp'] = datetime.fromtimestamp(
                        time.time() + grace, timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
                    pod['metadata']['deletionGracePeriodSeconds'] = grace
                    sim.emit('MODIFIED', pod, prev)
                out = copy.deepcopy(pod)
            else:
                prev = copy.deepcopy(pod)
                pod['metadata']['deletionTimestamp'] = now_rfc3339()
                pod['metadata']['deletionGracePeriodSeconds'] = 0
                out = copy.deepcopy(pod)
        if now_gone:
            sim.remove(ns, name)
        self.send_json(200, out)

    def log(self, ns, name, q):
        sim = self.sim
        with sim.lock:
            pod = copy.deepcopy(sim.pods.get((ns, name)))
            if not pod:
                return self.not_found(name)
            ctrs = [c['name'] for c in pod['spec']['containers']]
            cname = q.get('container')
            if not cname:
                if len(ctrs) > 1:
                    return self.send_status(400, 'BadRequest', f'a container name must be specified for pod '
                                            f'{name}, choose one of: {ctrs}')
                cname = ctrs[0]
            if cname not in ctrs:
                return self.send_status(400, 'BadRequest', f'container {cname} is not valid for pod {name}')
            if not pod['spec'].get('nodeName'):
                self.send_response(204)
                self.send_header('Content-Length', '0')
                self.end_headers()
                return
            cs = (pod['status'].get('containerStatuses') or [{}])[0]
            waiting = cs.get('state', {}).get('waiting')
            if waiting:
                return self.send_status(400, 'BadRequest', f'container "{cname}" in pod "{name}" is waiting to '
                                        f'start: {waiting.get("reason", "ContainerCreating")}')
            log = sim.logs.get(pod['metadata']['uid'])
        if log is None:
            return self.not_found(name)
        try:
            params = log_params(q)
        except ValueError as e:
            return self.send_status(400, 'BadRequest', f'invalid parameter: {e}')
        self.start_chunked('text/plain')
        gen = sim.log_gen
        try:
            for b in iter_log(sim.lock, log, params):
                if sim.log_gen != gen:
                    # drop_logs: the connection breaks without the last chunk
                    self.close_connection = True
                    return
                self.chunk(b)
            self.chunk(b'')
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    # -- control
    def control(self, path, q):
        sim = self.sim
        raw = self.read_body()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return self.send_json(400, {'error': 'bad json'})
        with sim.lock:
            if path == '/_sim/faults':
                for k in ('http_429', 'http_500'):
                    if k in body:
                        sim.faults[k] = dict(body[k])
                if 'force_410' in body:
                    sim.faults['force_410'] = int(body['force_410'])
                if body.get('drop_watches'):
                    sim.watch_gen += 1
                    sim.lock.notify_all()
                if body.get('drop_logs'):
                    sim.log_gen += 1
                    sim.lock.notify_all()
                if 'pod' in body:
                    for f in body['pod'] if isinstance(body['pod'], list) else [body['pod']]:
                        sim.faults['pod'].append(dict(f))
                out = {'faults': sim.faults}
            elif path == '/_sim/reset':
                sim.faults = {'http_429': None, 'http_500': None, 'force_410': 0, 'pod': []}
                out = {'faults': sim.faults}
            elif path == '/_sim/compact':
                sim.floor = sim.rv
                sim.events = []
                out = {'floor': sim.floor}
            elif path == '/_sim/stats':
                out = dict(sim.stats, resourceVersion=sim.rv, pods=len(sim.pods))
            elif path == '/_sim/delete':
                out = None
            else:
                return self.send_json(404, {'error': 'unknown control path'})
        if path == '/_sim/delete':
            sim.remove(body.get('namespace', 'default'), body.get('name', ''))
            out = {'deleted': body.get('name')}
        self.send_json(200, out)


def main():
    ap = argparse.ArgumentParser(description='kiln kube-sim: a stand-in Kubernetes API server for tests')
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--port-file')
    ap.add_argument('--nodes', type=int, default=3)
    ap.add_argument('--node-gpus', type=int, default=8, help='nvidia.com/gpu capacity of each node')
    ap.add_argument('--node-cpu', default='64', help='cpu allocatable of each node')
    ap.add_argument('--node-memory', default='256Gi', help='memory allocatable of each node')
    ap.add_argument('--node-labels', help='k=v,... more labels on every node')
    ap.add_argument('--token', help='require "Authorization: Bearer TOKEN"')
    ap.add_argument('--manual', action='store_true', help='no scheduler/kubelet: tests drive pod status')
    ap.add_argument('--strict-pod-names', action='store_true',
                    help='pod names must be DNS-1123 labels (<= 63), not just subdomains')
    ap.add_argument('--schedule-delay', type=float, default=0.05)
    ap.add_argument('--bookmark-interval', type=float, default=1.0)
    ap.add_argument('--watch-timeout', type=float, default=1800)
    ap.add_argument('--history', type=int, default=0, help='keep only the last N events (older RVs: 410)')
    ap.add_argument('--tls-cert')
    ap.add_argument('--tls-key')
    ap.add_argument('--verbose', action='store_true')
    args = ap.parse_args()
    Handler.sim = Sim(args)
    srv = ThreadingHTTPServer((args.host, args.port), Handler)
    srv.daemon_threads = True
    scheme = 'http'
    if args.tls_cert:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        scheme = 'https'
    port = srv.server_address[1]
    if args.port_file:
        tmp = args.port_file + '.tmp'
        with open(tmp, 'w') as f:
            f.write(f'{port}\n')
        os.replace(tmp, args.port_file)
    print(f'kube-sim listening on {scheme}://{args.host}:{port}', flush=True)

    def stop(*_):
        Handler.sim.kubelet.kill_all()
        os._exit(0)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    srv.serve_forever()


if __name__ == '__main__':
    main()
