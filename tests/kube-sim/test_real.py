#!/usr/bin/env python3
"""Pod lifecycle checks that run unchanged on kube-sim (KUBECONFIG unset), on the
local kube-apiserver with sim-kubelet.py (real-apiserver.sh) and on any cluster
(KUBECONFIG): create -> Running -> Succeeded/Failed with exit codes, logs through
pods/NAME/log, termination message, OOMKilled, an unpullable and an invalid image,
Unschedulable, activeDeadlineSeconds, graceful delete, a status written from
outside (eviction / node loss played by a test).  TAP.
Every failure is triggered the way a real cluster produces it; only the last
check (request faults) needs kube-sim and skips elsewhere."""
import re
import sys
import threading
import time
from urllib.parse import quote

from simclient import Tap, connect, pod

BUSYBOX = 'busybox:1.36'


def phase(p):
    return (p or {}).get('status', {}).get('phase')


def cstate(p):
    return (((p or {}).get('status', {}).get('containerStatuses') or [{}])[0]).get('state') or {}


def term(p):
    return cstate(p).get('terminated') or {}


def waiting(p):
    return cstate(p).get('waiting') or {}


def mk(name, cmd, **kw):
    p = pod(name, ('sh', '-c', cmd))
    c = p['spec']['containers'][0]
    c['image'] = kw.pop('image', BUSYBOX)
    for k in ('env', 'resources', 'terminationMessagePolicy'):
        if k in kw:
            c[k] = kw.pop(k)
    p['spec'].update(kw)
    p['spec'].setdefault('terminationGracePeriodSeconds', 2)
    return p


def main(api=None):
    t = Tap()
    own = api is None
    api = api or connect('--nodes', '1', '--node-gpus', '2')
    ns = api.make_namespace('kiln-e2e')
    try:
        run(t, api, ns)
    finally:
        api.drop_namespace(ns)
        if own:
            api.stop()
    return t


def run(t, api, ns, slow=1.0):
    P = f'/api/v1/namespaces/{ns}/pods'
    tmo = 60 if api.kind == 'cluster' else 15    # a real cluster pulls images

    def create(p):
        st, out, _ = api.req('POST', P, p)
        t.ok(st == 201, f'create {p["metadata"]["name"]}: 201', out if st != 201 else None)
        return out

    def wait(name, pred, timeout=tmo):
        return api.wait_pod(ns, name, pred, timeout)

    done = ('Succeeded', 'Failed')
    create(mk('ok', 'echo one; echo two >&2; exit 0'))
    create(mk('bad', 'echo out; exit 3'))
    create(mk('msg', 'printf "%s" \'{"rows": 3}\' > "$KILN_OUTPUTS"; echo done',
              env=[{'name': 'KILN_OUTPUTS', 'value': '/dev/termination-log'}, {'name': 'WHO', 'value': 'kiln'}]))
    create(mk('fallback', 'echo first; echo last words; exit 2', terminationMessagePolicy='FallbackToLogsOnError'))
    create(mk('oom', 'a=xxxxxxxxxxxxxxxx; while :; do a="$a$a"; done',
              resources={'limits': {'memory': '64Mi'}}))
    create(mk('pull', 'true', image='registry.invalid/kiln/none:1'))
    create(mk('badref', 'true', image='kiln/UPPER:1'))
    create(mk('gpus', 'true', resources={'limits': {'nvidia.com/gpu': '64'}}))
    create(mk('deadline', 'sleep 30', activeDeadlineSeconds=1))
    create(mk('stubborn', 'trap "" TERM; while :; do sleep 0.1; done'))

    # --- run to completion with exit codes
    p = wait('ok', lambda p: phase(p) in done)
    t.is_((phase(p), term(p).get('exitCode'), term(p).get('reason')), ('Succeeded', 0, 'Completed'),
          'exit 0: Succeeded, terminated exitCode 0 Completed')
    t.ok(bool(p['spec'].get('nodeName')), 'the scheduler bound it to a node')
    conds = {c['type']: c['status'] for c in p['status'].get('conditions') or []}
    t.is_(conds.get('PodScheduled'), 'True', 'PodScheduled=True')
    p = wait('bad', lambda p: phase(p) in done)
    t.is_((phase(p), term(p).get('exitCode'), term(p).get('reason')), ('Failed', 3, 'Error'),
          'exit 3: Failed, exitCode 3 Error')

    # --- logs through the apiserver
    st, body = api.text(P + '/ok/log')
    t.is_((st, sorted(body.splitlines())), (200, ['one', 'two']), 'pods/NAME/log has stdout and stderr')
    st, body = api.text(P + '/ok/log?timestamps=true')
    first = body.splitlines()[0] if body else ''
    t.ok(st == 200 and first[:4].isdigit() and 'Z ' in first, 'timestamps=true: RFC3339Nano prefix', first)
    st, body = api.text(P + '/ok/log?tailLines=1')
    t.is_((st, len(body.splitlines())), (200, 1), 'tailLines=1: one line')
    st, body = api.text(P + '/ok/log?limitBytes=2')
    t.is_((st, len(body)), (200, 2), 'limitBytes=2: two bytes')
    st, body = api.text(P + '/ok/log?sinceTime=' + quote('2099-01-01T00:00:00Z'))
    t.is_((st, body), (200, ''), 'sinceTime in the future: nothing')
    st, body = api.text(P + '/ok/log?sinceTime=' + quote(first[:19] + 'Z'))
    t.is_((st, len(body.splitlines())), (200, 2), 'sinceTime = the first line\'s whole second: every line')

    create(mk('follow', 'echo a; sleep 1; echo b; exit 4'))
    wait('follow', lambda p: phase(p) == 'Running')
    t0 = time.time()
    st, body = api.text(P + '/follow/log?follow=true', timeout=tmo)
    t.is_((st, body), (200, 'a\nb\n'), 'follow=true streams until the container exits')
    t.ok(time.time() - t0 >= 0.5, 'follow waited for the later line', time.time() - t0)
    p = wait('follow', lambda p: phase(p) in done)
    t.is_(term(p).get('exitCode'), 4, 'follow: exit code 4')

    # --- termination message
    p = wait('msg', lambda p: phase(p) in done)
    t.is_((phase(p), term(p).get('message')), ('Succeeded', '{"rows": 3}'),
          'a file written to the terminationMessagePath env value becomes terminated.message')
    p = wait('fallback', lambda p: phase(p) in done)
    t.ok('last words' in (term(p).get('message') or ''), 'FallbackToLogsOnError: the log tail is the message',
         term(p))

    # --- memory limit
    p = wait('oom', lambda p: phase(p) in done)
    t.is_((phase(p), term(p).get('reason'), term(p).get('exitCode')), ('Failed', 'OOMKilled', 137),
          'over limits.memory: OOMKilled, exit 137')

    # --- images
    p = wait('pull', lambda p: waiting(p).get('reason') in ('ErrImagePull', 'ImagePullBackOff'))
    t.is_(phase(p), 'Pending', 'unpullable image: Pending')
    t.ok('no such host' in waiting(p).get('message', '') or 'Back-off pulling image' in waiting(p).get('message', ''),
         'ErrImagePull/ImagePullBackOff message names the lookup failure', waiting(p))
    p = wait('pull', lambda p: waiting(p).get('reason') == 'ImagePullBackOff')
    t.is_(waiting(p).get('reason'), 'ImagePullBackOff', 'then ImagePullBackOff')
    st, s, _ = api.req('GET', P + '/pull/log')
    t.ok(st == 400 and 'waiting to start' in str(s), 'log of a waiting container: 400 waiting to start', (st, s))
    p = wait('badref', lambda p: waiting(p).get('reason') == 'InvalidImageName')
    t.is_((phase(p), waiting(p).get('reason')), ('Pending', 'InvalidImageName'), 'bad image reference: InvalidImageName')

    # --- scheduling
    p = wait('gpus', lambda p: any(c.get('reason') == 'Unschedulable' for c in p['status'].get('conditions') or []))
    c = next((c for c in p['status'].get('conditions') or [] if c['type'] == 'PodScheduled'), {})
    t.ok(phase(p) == 'Pending' and c.get('status') == 'False' and 'Insufficient nvidia.com/gpu' in c.get('message', ''),
         'more GPUs than any node has: PodScheduled=False Unschedulable, Insufficient nvidia.com/gpu', c)
    t.ok(not p['spec'].get('nodeName'), 'an unschedulable pod is not bound')
    if api.kind == 'cluster':
        t.skip('the scheduler message word for word', 'a real scheduler words it its own way')
    else:
        t.ok(re.match(r'^0/(\d+) nodes are available: \1 Insufficient nvidia\.com/gpu\.$', c.get('message', '')),
             'the scheduler message word for word', c.get('message'))
    st, _, _ = api.req('DELETE', P + '/gpus?gracePeriodSeconds=30')
    st2, _, _ = api.req('GET', P + '/gpus')
    t.is_((st, st2), (200, 404), 'deleting an unbound pod removes it at once')

    # --- activeDeadlineSeconds
    p = wait('deadline', lambda p: phase(p) in done)
    t.is_((phase(p), p['status'].get('reason')), ('Failed', 'DeadlineExceeded'), 'activeDeadlineSeconds: DeadlineExceeded')

    # --- graceful delete of a running pod that ignores SIGTERM
    p = wait('stubborn', lambda p: phase(p) == 'Running')
    st, l, _ = api.req('GET', P)
    rv = l['metadata']['resourceVersion']
    evs = {}

    def watcher():
        evs['r'] = api.watch(f'{P}?watch=1&fieldSelector=metadata.name%3Dstubborn&resourceVersion={rv}',
                             until=lambda e: e[-1]['type'] == 'DELETED', timeout=tmo)
    th = threading.Thread(target=watcher)
    th.start()
    t0 = time.time()
    st, d, _ = api.req('DELETE', P + '/stubborn', {'apiVersion': 'v1', 'kind': 'DeleteOptions', 'gracePeriodSeconds': 2,
                                                   'preconditions': {'uid': p['metadata']['uid']}})
    t.ok(st == 200 and d['metadata'].get('deletionTimestamp'), 'graceful delete: 200 with deletionTimestamp', (st, d))
    th.join(tmo + 5)
    took = time.time() - t0
    types = [e['type'] for e in evs.get('r', (0, [], 0))[1]]
    t.ok(types and types[0] == 'MODIFIED' and types[-1] == 'DELETED', 'watch: MODIFIED (Terminating) ... DELETED', types)
    t.ok(1.8 <= took < tmo, 'a process ignoring SIGTERM is gone after the grace period (SIGKILL)', took)
    st, _, _ = api.req('GET', P + '/stubborn')
    t.is_(st, 404, 'the kubelet removed the object')

    # a bound pod stuck pulling its image also goes when deleted (the kubelet finishes it)
    api.req('DELETE', P + '/pull?gracePeriodSeconds=1')
    end = time.time() + tmo
    while api.req('GET', P + '/pull')[0] != 404 and time.time() < end:
        time.sleep(0.1)
    t.is_(api.req('GET', P + '/pull')[0], 404, 'a pod stuck pulling its image is removed when deleted')

    # --- a status written by someone else (a test playing eviction / node loss) is kept
    if api.kind == 'cluster':
        t.skip('an outside terminal status stops the process and is kept', 'a real kubelet owns pod status')
        t.skip('phase Unknown (node lost): a later graceful delete is finished', 'a real kubelet owns pod status')
    else:
        create(mk('evict', 'echo up; sleep 30'))
        create(mk('lost', 'sleep 30'))
        wait('evict', lambda p: phase(p) == 'Running')
        wait('lost', lambda p: phase(p) == 'Running')
        api.req('PATCH', P + '/evict/status', {'status': {'phase': 'Failed', 'reason': 'Evicted',
                                                          'message': 'The node was low on resource: memory.'}},
                'application/merge-patch+json')
        api.req('PATCH', P + '/lost/status', {'status': {'phase': 'Unknown', 'reason': 'NodeLost'}},
                'application/merge-patch+json')
        t0 = time.time()
        st, body = api.text(P + '/evict/log?follow=true', timeout=10)
        time.sleep(0.3)
        p = api.req('GET', P + '/evict')[1]
        t.ok(st == 200 and time.time() - t0 < 5 and (phase(p), p['status'].get('reason')) == ('Failed', 'Evicted'),
             'an outside terminal status stops the process and is kept', (st, time.time() - t0, p.get('status')))
        api.req('DELETE', P + '/lost?gracePeriodSeconds=1')
        end = time.time() + 10
        while api.req('GET', P + '/lost')[0] != 404 and time.time() < end:
            time.sleep(0.1)
        t.is_(api.req('GET', P + '/lost')[0], 404, 'phase Unknown (node lost): a later graceful delete is finished')

    # --- request faults exist only in kube-sim
    if api.is_sim:
        api.fault(http_429={'count': 1, 'retry_after': 2, 'method': 'GET'})
        st, s, r = api.req('GET', P)
        t.is_((st, r.getheader('Retry-After')), (429, '2'), 'kube-sim fault: 429 with Retry-After')
    else:
        t.skip('429 with Retry-After', f'fault injection needs kube-sim (this is {api.kind})')


if __name__ == '__main__':
    sys.exit(main().done())
