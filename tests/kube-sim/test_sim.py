#!/usr/bin/env python3
"""kube-sim's own protocol tests (TAP): create/get/list/watch/patch/delete/log,
Status errors, watch resume and 410, faults, the simulated scheduler and kubelet
(kubelet_core.py), then test_real.py's lifecycle checks against a fresh kube-sim."""
import sys
import time
from urllib.parse import quote

import test_real
from simclient import Sim, Tap, pod

NS = '/api/v1/namespaces/default/pods'


def phase(p):
    return (p or {}).get('status', {}).get('phase')


def term(p):
    cs = ((p or {}).get('status', {}).get('containerStatuses') or [{}])[0]
    return cs.get('state', {}).get('terminated') or {}


def main():
    t = Tap()
    sim = Sim('--bookmark-interval', '0.3', '--nodes', '3', '--node-gpus', '2')
    try:
        run(t, sim)
        kubelet(t, sim)
    finally:
        sim.stop()
    # the pod lifecycle checks that also run against a real apiserver (kube_real.sh)
    sim = Sim('--nodes', '1', '--node-gpus', '2')
    ns = sim.make_namespace('e2e')
    try:
        test_real.run(t, sim, ns)
    finally:
        sim.stop()
    return t.done()


def run(t, sim):
    # --- create, duplicates, Status errors
    st, p, _ = sim.req('POST', NS, pod('hello', ('sh', '-c', 'echo one; echo two >&2; exit 0'),
                                       {'kiln.io/run': 'r1', 'kiln.io/task': 'a'}))
    t.is_(st, 201, 'create answers 201')
    t.ok(p['metadata'].get('uid') and p['metadata'].get('resourceVersion'), 'created pod has uid and resourceVersion')
    t.is_(p['status']['phase'], 'Pending', 'a new pod is Pending')
    st, s, _ = sim.req('POST', NS, pod('hello'))
    t.is_((st, s['kind'], s['reason'], s['code']), (409, 'Status', 'AlreadyExists', 409), 'duplicate create: 409 AlreadyExists Status')
    t.is_(s['message'], 'pods "hello" already exists', '409 message as the real server words it')
    st, s, _ = sim.req('POST', NS, pod('Bad_Name'))
    t.is_((st, s['reason']), (422, 'Invalid'), 'bad name: 422 Invalid')
    t.is_([c['field'] for c in s['details']['causes']], ['metadata.name'], '422 cause names metadata.name')
    t.ok(s['message'].startswith('Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123'),
         '422 message like the real one', s['message'])
    bad = pod('bad-fields', labels={'kiln.io/run': 'has space'})
    bad['spec']['restartPolicy'] = 'Sometimes'
    bad['spec']['containers'][0].update(image='', resources={'limits': {'memory': '1XB', 'nvidia.com/gpu': '0.5'},
                                                              'requests': {'cpu': '2'}})
    bad['spec']['containers'][0]['resources']['limits']['cpu'] = '1'
    st, s, _ = sim.req('POST', NS, bad)
    fields = sorted(c['field'] for c in s['details']['causes'])
    t.is_(fields, sorted(['metadata.labels', 'spec.restartPolicy', 'spec.containers[0].image',
                          'spec.containers[0].resources.limits[memory]',
                          'spec.containers[0].resources.limits[nvidia.com/gpu]',
                          'spec.containers[0].resources.requests']), '422 lists every bad field with its path')
    nocont = pod('nocont')
    nocont['spec']['containers'] = []
    st, s, _ = sim.req('POST', NS, nocont)
    t.is_((st, s['details']['causes'][0]['field'], s['details']['causes'][0]['reason']),
          (422, 'spec.containers', 'FieldValueRequired'), 'no containers: Required value')
    st, s, _ = sim.req('GET', NS + '/nope')
    t.is_((st, s['reason'], s['message']), (404, 'NotFound', 'pods "nope" not found'), 'GET missing: 404 NotFound Status')
    st, s, _ = sim.req('DELETE', NS + '/nope')
    t.is_(st, 404, 'DELETE missing: 404')

    # --- the kubelet runs it; logs
    p = sim.wait_pod('default', 'hello', lambda p: phase(p) == 'Succeeded')
    t.is_(phase(p), 'Succeeded', 'exit 0 -> Succeeded')
    t.is_((term(p).get('exitCode'), term(p).get('reason')), (0, 'Completed'), 'terminated exitCode 0 reason Completed')
    t.is_(p['spec'].get('nodeName'), 'sim-node-0', 'bound to a node')
    st, body = sim.text(NS + '/hello/log')
    t.is_((st, body), (200, 'one\ntwo\n'), 'log has stdout and stderr')
    st, body = sim.text(NS + '/hello/log?timestamps=true')
    first = body.splitlines()[0]
    t.ok(first.endswith(' one') and first[:4].isdigit() and 'Z ' in first, 'timestamps=true prefixes RFC3339Nano', first)
    ts = first.split(' ')[0]
    st, body = sim.text(NS + '/hello/log?sinceTime=' + quote('2099-01-01T00:00:00Z'))
    t.is_(body, '', 'sinceTime in the future: nothing')
    st, body = sim.text(NS + '/hello/log?sinceTime=' + quote(ts[:19] + 'Z'))
    t.is_(body, 'one\ntwo\n', 'sinceTime (whole seconds) of the first line: everything')
    st, body = sim.text(NS + '/hello/log?tailLines=1')
    t.is_(body, 'two\n', 'tailLines=1')
    st, s, _ = sim.req('GET', NS + '/hello/log?container=nope')
    t.is_((st, s['message']), (400, 'container nope is not valid for pod hello'), 'wrong container: 400')

    # follow streams until the container ends
    sim.req('POST', NS, pod('slow', ('sh', '-c', 'echo a; sleep 0.5; echo b; exit 3')))
    sim.wait_pod('default', 'slow', lambda p: phase(p) == 'Running')
    t0 = time.time()
    st, body = sim.text(NS + '/slow/log?follow=true')
    t.is_(body, 'a\nb\n', 'follow=true streams until the container exits')
    t.ok(time.time() - t0 >= 0.3, 'follow waited for the later line')
    p = sim.wait_pod('default', 'slow', lambda p: phase(p) == 'Failed')
    t.is_((phase(p), term(p).get('exitCode'), term(p).get('reason')), ('Failed', 3, 'Error'), 'exit 3 -> Failed, Error, exitCode 3')

    # --- list and selectors
    sim.req('POST', NS, pod('other', labels={'kiln.io/run': 'r2', 'kiln.io/task': 'b'}))
    def names(q):
        st, l, _ = sim.req('GET', NS + '?labelSelector=' + quote(q))
        return sorted(i['metadata']['name'] for i in l['items'])
    t.is_(names('kiln.io/run=r1'), ['hello'], 'labelSelector k=v')
    t.is_(names('kiln.io/run!=r1,kiln.io/task'), ['other'], 'labelSelector k!=v,exists')
    t.is_(names('kiln.io/run in (r1,r2)'), ['hello', 'other'], 'labelSelector in (...)')
    t.is_(names('!kiln.io/run'), ['slow'], 'labelSelector !k')
    st, l, _ = sim.req('GET', NS + '?fieldSelector=status.phase%3DFailed')
    t.is_([i['metadata']['name'] for i in l['items']], ['slow'], 'fieldSelector status.phase=Failed')
    st, l, _ = sim.req('GET', NS + '?limit=2')
    t.ok(len(l['items']) == 2 and l['metadata'].get('continue'), 'limit=2 gives a continue token')
    st, l2, _ = sim.req('GET', NS + '?limit=2&continue=' + quote(l['metadata']['continue']))
    t.is_(len(l2['items']), 1, 'continue gives the rest')
    t.is_(l['kind'], 'PodList', 'LIST kind PodList')

    # --- watch: from a list RV, resume, bookmarks
    st, l, _ = sim.req('GET', NS + '?labelSelector=w%3D1')
    rv0 = l['metadata']['resourceVersion']
    sim.req('POST', NS, pod('w1', ('sh', '-c', 'echo w'), {'w': '1'}))
    st, evs, _ = sim.watch(f'{NS}?watch=1&labelSelector=w%3D1&resourceVersion={rv0}',
                           until=lambda e: phase(e[-1]['object']) == 'Succeeded')
    t.is_(st, 200, 'watch answers 200')
    t.is_([e['type'] for e in evs][:2], ['ADDED', 'MODIFIED'], 'watch from list RV: ADDED then MODIFIED')
    t.is_(phase(evs[-1]['object']), 'Succeeded', 'watch sees Succeeded')
    mid = evs[1]['object']['metadata']['resourceVersion']
    st, evs2, _ = sim.watch(f'{NS}?watch=1&labelSelector=w%3D1&resourceVersion={mid}',
                            until=lambda e: phase(e[-1]['object']) == 'Succeeded')
    t.is_([e['object']['metadata']['resourceVersion'] for e in evs2],
          [e['object']['metadata']['resourceVersion'] for e in evs[2:]], 'watch resumed from an RV replays exactly what followed')
    last = evs[-1]['object']['metadata']['resourceVersion']
    st, evs3, clean = sim.watch(f'{NS}?watch=1&labelSelector=w%3D1&resourceVersion={last}&allowWatchBookmarks=true&timeoutSeconds=1')
    t.ok(clean and evs3 and all(e['type'] == 'BOOKMARK' for e in evs3), 'quiet watch: only BOOKMARKs, clean end at timeoutSeconds',
         evs3)
    t.ok(all(e['object']['metadata'].get('resourceVersion') for e in evs3), 'BOOKMARK carries a resourceVersion')
    st, evs4, _ = sim.watch(f'{NS}?watch=1&labelSelector=w%3D1&resourceVersion=0&timeoutSeconds=1')
    t.is_([(e['type'], e['object']['metadata']['name']) for e in evs4], [('ADDED', 'w1')], 'RV 0: synthetic ADDED for what exists')

    # label change out of the selector -> DELETED without deletionTimestamp
    st, l, _ = sim.req('GET', NS + '?labelSelector=w%3D1')
    rv = l['metadata']['resourceVersion']
    st, p, _ = sim.req('PATCH', NS + '/w1', {'metadata': {'labels': {'w': '2'}}}, 'application/merge-patch+json')
    t.is_((st, p['metadata']['labels']['w']), (200, '2'), 'merge patch of labels')
    st, evs, _ = sim.watch(f'{NS}?watch=1&labelSelector=w%3D1&resourceVersion={rv}', until=lambda e: True)
    t.ok(evs and evs[0]['type'] == 'DELETED' and 'deletionTimestamp' not in evs[0]['object']['metadata']
         and evs[0]['object']['metadata']['labels']['w'] == '1', 'relabel out of the selector: DELETED, old object, no deletionTimestamp', evs)
    st, s, _ = sim.req('PATCH', NS + '/w1', {'metadata': {'labels': {'w': 'a b'}}}, 'application/merge-patch+json')
    t.is_(st, 422, 'patch with a bad label value: 422')
    st, s, _ = sim.req('PATCH', NS + '/w1', {'metadata': {}}, 'application/json')
    t.is_(st, 415, 'patch without a patch content type: 415')

    # --- 410
    sim.req('POST', '/_sim/compact')
    st, evs, clean = sim.watch(f'{NS}?watch=1&resourceVersion={rv0}')
    t.is_(st, 200, 'too old RV: still HTTP 200')
    t.ok(len(evs) == 1 and evs[0]['type'] == 'ERROR' and evs[0]['object']['code'] == 410
         and evs[0]['object']['reason'] == 'Expired' and evs[0]['object']['kind'] == 'Status', 'one ERROR event with a 410 Status', evs)
    t.ok(clean, 'the server closes the stream after the ERROR')
    st, s, _ = sim.req('GET', f'{NS}?resourceVersion={rv0}&resourceVersionMatch=Exact')
    t.is_((st, s['code']), (410, 410), 'LIST with an old RV and resourceVersionMatch=Exact: HTTP 410')
    st, l, _ = sim.req('GET', NS)
    sim.fault(force_410=1)
    st, evs, _ = sim.watch(f'{NS}?watch=1&resourceVersion={l["metadata"]["resourceVersion"]}')
    t.ok(evs and evs[0]['type'] == 'ERROR' and evs[0]['object']['code'] == 410, 'force_410 fault')
    st, evs, clean = sim.watch(f'{NS}?watch=1&resourceVersion={l["metadata"]["resourceVersion"]}&timeoutSeconds=0.5')
    t.ok(clean and not any(e['type'] == 'ERROR' for e in evs), 'force_410 applies once')

    # --- request faults
    sim.fault(http_429={'count': 2, 'retry_after': 3, 'method': 'POST'})
    st, s, r = sim.req('POST', NS, pod('throttled'))
    t.is_((st, s['reason'], r.getheader('Retry-After')), (429, 'TooManyRequests', '3'), '429 with Retry-After')
    st, _, _ = sim.req('GET', NS)
    t.is_(st, 200, '429 fault filtered by method')
    sim.req('POST', NS, pod('throttled'))
    st, _, _ = sim.req('POST', NS, pod('throttled'))
    t.is_(st, 201, 'after N faults requests go through')
    sim.fault(http_500={'count': 1})
    st, s, _ = sim.req('GET', NS)
    t.is_((st, s['code']), (500, 500), '500 fault')

    import threading
    res = {}
    def w():
        res['r'] = sim.watch(f'{NS}?watch=1&resourceVersion=0', timeout=5)
    th = threading.Thread(target=w)
    th.start()
    time.sleep(0.4)
    sim.fault(drop_watches=True)
    th.join(6)
    t.ok('r' in res and res['r'][2] is False, 'drop_watches: the stream breaks without its last chunk')

    # --- kubelet states and pod faults
    sim.fault(pod={'fault': 'image_pull', 'name': 'pull'})
    sim.req('POST', NS, pod('pull'))
    p = sim.wait_pod('default', 'pull', lambda p: (p['status'].get('containerStatuses') or [{}])[0]
                     .get('state', {}).get('waiting', {}).get('reason') == 'ImagePullBackOff')
    t.is_(phase(p), 'Pending', 'image pull error: Pending')
    t.is_(p['status']['containerStatuses'][0]['state']['waiting']['reason'], 'ImagePullBackOff', 'ErrImagePull then ImagePullBackOff')
    st, s, _ = sim.req('GET', NS + '/pull/log')
    t.ok(st == 400 and 'is waiting to start: ImagePullBackOff' in s['message'], 'log of a waiting container: 400 waiting to start', s)

    sim.req('POST', NS, pod('gpu', resources=None) if False else dict(pod('gpu'), spec=dict(pod('gpu')['spec'], containers=[
        {'name': 'main', 'image': 'x', 'command': ['true'], 'resources': {'limits': {'nvidia.com/gpu': '4'}}}])))
    p = sim.wait_pod('default', 'gpu', lambda p: p['status'].get('conditions'))
    c = p['status']['conditions'][0]
    t.is_((phase(p), c['type'], c['status'], c['reason'], c['message']),
          ('Pending', 'PodScheduled', 'False', 'Unschedulable', '0/3 nodes are available: 3 Insufficient nvidia.com/gpu.'),
          'more GPUs than a node has: Unschedulable with the scheduler message')
    st, _, r = sim.req('GET', NS + '/gpu/log')
    t.is_(st, 204, 'log of an unbound pod: 204')
    sim.fault(pod={'fault': 'unschedulable', 'name': 'unsched', 'message': "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."})
    sim.req('POST', NS, pod('unsched'))
    p = sim.wait_pod('default', 'unsched', lambda p: p['status'].get('conditions'))
    t.ok('node affinity' in p['status']['conditions'][0].get('message', ''), 'unschedulable fault with a message')

    sim.fault(pod={'fault': 'oom', 'labelSelector': 'kind=oom'})
    sim.req('POST', NS, pod('oom', ('sleep', '5'), {'kind': 'oom'}))
    p = sim.wait_pod('default', 'oom', lambda p: phase(p) == 'Failed')
    t.is_((phase(p), term(p).get('exitCode'), term(p).get('reason')), ('Failed', 137, 'OOMKilled'), 'OOMKilled, exit 137')
    sim.fault(pod={'fault': 'evicted', 'name': 'evict'})
    sim.req('POST', NS, pod('evict', ('sleep', '5')))
    p = sim.wait_pod('default', 'evict', lambda p: phase(p) == 'Failed')
    t.ok(phase(p) == 'Failed' and p['status'].get('reason') == 'Evicted' and 'low on resource' in p['status'].get('message', ''),
         'Evicted: Failed with pod reason and message')
    sim.req('POST', NS, pod('deadline', ('sleep', '5'), activeDeadlineSeconds=1))
    p = sim.wait_pod('default', 'deadline', lambda p: phase(p) == 'Failed')
    t.is_((phase(p), p['status'].get('reason')), ('Failed', 'DeadlineExceeded'), 'activeDeadlineSeconds: Failed DeadlineExceeded')
    sim.req('POST', NS, pod('nostart', ('/nonexistent/binary',)))
    p = sim.wait_pod('default', 'nostart', lambda p: phase(p) == 'Failed')
    t.is_(term(p).get('reason'), 'StartError', 'a command that cannot run: StartError')

    # deleted behind the client's back
    st, l, _ = sim.req('GET', NS)
    rv = l['metadata']['resourceVersion']
    sim.fault(pod={'fault': 'delete', 'name': 'vanish'})
    sim.req('POST', NS, pod('vanish', ('sleep', '5')))
    st, evs, _ = sim.watch(f'{NS}?watch=1&fieldSelector=metadata.name%3Dvanish&resourceVersion={rv}',
                           until=lambda e: e[-1]['type'] == 'DELETED')
    t.ok(evs and evs[-1]['type'] == 'DELETED', 'delete fault: DELETED event with no client DELETE')
    sim.req('POST', NS, pod('vanish2', ('sleep', '5')))
    sim.wait_pod('default', 'vanish2', lambda p: phase(p) == 'Running')
    sim.req('POST', '/_sim/delete', {'namespace': 'default', 'name': 'vanish2'})
    st, _, _ = sim.req('GET', NS + '/vanish2')
    t.is_(st, 404, '/_sim/delete removes a pod at once')

    # graceful delete of a running pod; uid precondition
    sim.req('POST', NS, pod('grace', ('sleep', '10')))
    p = sim.wait_pod('default', 'grace', lambda p: phase(p) == 'Running')
    st, s, _ = sim.req('DELETE', NS + '/grace', {'kind': 'DeleteOptions', 'apiVersion': 'v1', 'preconditions': {'uid': 'wrong'}})
    t.is_((st, s['reason']), (409, 'Conflict'), 'delete with a wrong uid precondition: 409 Conflict')
    st, l, _ = sim.req('GET', NS)
    rv = l['metadata']['resourceVersion']
    st, d, _ = sim.req('DELETE', NS + '/grace', {'kind': 'DeleteOptions', 'apiVersion': 'v1', 'gracePeriodSeconds': 2,
                                               'preconditions': {'uid': p['metadata']['uid']}})
    t.ok(st == 200 and d['metadata'].get('deletionTimestamp'), 'graceful delete: 200 with deletionTimestamp')
    st, evs, _ = sim.watch(f'{NS}?watch=1&fieldSelector=metadata.name%3Dgrace&resourceVersion={rv}',
                           until=lambda e: e[-1]['type'] == 'DELETED')
    t.is_([e['type'] for e in evs], ['MODIFIED', 'MODIFIED', 'DELETED'],
          'graceful delete: MODIFIED (Terminating), MODIFIED (container terminated), DELETED')
    t.is_((phase(evs[1]['object']), term(evs[1]['object']).get('exitCode'), term(evs[1]['object']).get('reason')),
          ('Failed', 143, 'Error'), 'the SIGTERMed container is reported terminated, exit 143, before the object goes')
    st, d, _ = sim.req('DELETE', NS + '/hello')
    st2, _, _ = sim.req('GET', NS + '/hello')
    t.is_((st, st2), (200, 404), 'delete of a finished pod removes it at once')

    # status patch (the kubelet's path, for tests in --manual mode)
    st, p, _ = sim.req('PATCH', NS + '/gpu/status', {'status': {'phase': 'Failed', 'reason': 'UnexpectedAdmissionError'}},
                       'application/merge-patch+json')
    t.is_((st, phase(p), p['status']['reason'], p['status']['conditions'][0]['reason']),
          (200, 'Failed', 'UnexpectedAdmissionError', 'Unschedulable'), 'merge patch of status keeps the rest')
    st, stats, _ = sim.req('GET', '/_sim/stats')
    t.ok(stats['creates'] >= 10 and stats['http_429'] == 2, 'stats count creates and faults', stats)



def kubelet(t, sim):
    """kubelet_core behaviour seen through kube-sim: nodes, scheduler messages,
    image errors worded like the kubelet's, memory limit, $(VAR), workingDir."""
    st, l, _ = sim.req('GET', '/api/v1/nodes')
    t.is_((st, l['kind'], [n['metadata']['name'] for n in l['items']]),
          (200, 'NodeList', ['sim-node-0', 'sim-node-1', 'sim-node-2']), 'GET /api/v1/nodes lists the simulated nodes')
    n = l['items'][0]
    t.is_((n['status']['allocatable'].get('nvidia.com/gpu'), n['metadata']['labels'].get('kubernetes.io/hostname')),
          ('2', 'sim-node-0'), 'a node states nvidia.com/gpu allocatable and its hostname label')
    st, _, _ = sim.req('GET', '/api/v1/nodes/nope')
    t.is_(st, 404, 'GET a missing node: 404')

    sim.req('POST', NS, pod('sel', nodeSelector={'disk': 'ssd'}))
    p = sim.wait_pod('default', 'sel', lambda p: p['status'].get('conditions'))
    t.is_(p['status']['conditions'][0].get('message'),
          "0/3 nodes are available: 3 node(s) didn't match node selector.", 'nodeSelector no node has: the scheduler message')
    sim.req('POST', NS, pod('sel2', nodeSelector={'kubernetes.io/hostname': 'sim-node-2'}))
    p = sim.wait_pod('default', 'sel2', lambda p: phase(p) == 'Succeeded')
    t.is_(p['spec'].get('nodeName'), 'sim-node-2', 'nodeSelector on the hostname label binds to that node')

    img = 'registry.invalid/kiln/none:1'
    pp = pod('pullmsg')
    pp['spec']['containers'][0]['image'] = img
    sim.req('POST', NS, pp)
    p = sim.wait_pod('default', 'pullmsg', lambda p: (p['status'].get('containerStatuses') or [{}])[0]
                     .get('state', {}).get('waiting', {}).get('reason') == 'ErrImagePull')
    w = p['status']['containerStatuses'][0]['state']['waiting']
    t.is_(w.get('message'), f'Failed to pull image "{img}": rpc error: code = Unknown desc = failed to pull and unpack '
          f'image "{img}": failed to resolve reference "{img}": failed to do request: Head '
          '"https://registry.invalid/v2/kiln/none/manifests/1": dial tcp: lookup registry.invalid: no such host',
          'ErrImagePull message worded like the kubelet + containerd')
    p = sim.wait_pod('default', 'pullmsg', lambda p: p['status']['containerStatuses'][0]['state']['waiting']
                     .get('reason') == 'ImagePullBackOff')
    t.is_(p['status']['containerStatuses'][0]['state']['waiting'].get('message'), f'Back-off pulling image "{img}"',
          'ImagePullBackOff message')
    pp = pod('refmsg')
    pp['spec']['containers'][0]['image'] = 'kiln//x'
    sim.req('POST', NS, pp)
    p = sim.wait_pod('default', 'refmsg', lambda p: (p['status'].get('containerStatuses') or [{}])[0]
                     .get('state', {}).get('waiting', {}).get('reason') == 'InvalidImageName')
    t.is_(p['status']['containerStatuses'][0]['state']['waiting'].get('message'),
          'Failed to apply default image tag "kiln//x": couldn\'t parse image reference "kiln//x": invalid reference format',
          'InvalidImageName message')
    for i, ok_img in enumerate(('busybox', 'localhost:5000/a/b:1', 'ghcr.io/x/y@sha256:' + 'a' * 64, 'python:3.11-slim')):
        pp = pod(f'img-{i}')
        pp['spec']['containers'][0]['image'] = ok_img
        sim.req('POST', NS, pp)
        p = sim.wait_pod('default', pp['metadata']['name'], lambda p: phase(p) in ('Succeeded', 'Failed'), 5)
        t.is_(phase(p), 'Succeeded', f'valid image reference {ok_img!r} runs')

    # memory: a Python process over its limit is killed within a sampling period or so
    mem = pod('mem', (sys.executable, '-c', 'import time; b = [b"x" * (1 << 20) for _ in range(300)]; time.sleep(5)'))
    mem['spec']['containers'][0]['resources'] = {'limits': {'memory': '50Mi'}}
    t0 = time.time()
    sim.req('POST', NS, mem)
    p = sim.wait_pod('default', 'mem', lambda p: phase(p) in ('Succeeded', 'Failed'))
    t.is_((phase(p), term(p).get('reason'), term(p).get('exitCode')), ('Failed', 'OOMKilled', 137),
          'RSS over limits.memory: OOMKilled 137')
    t.ok(time.time() - t0 < 3, 'killed well before the process would have ended', time.time() - t0)
    ok = pod('memok', (sys.executable, '-c', 'b = b"x" * (10 << 20)'))
    ok['spec']['containers'][0]['resources'] = {'limits': {'memory': '200Mi'}}
    sim.req('POST', NS, ok)
    p = sim.wait_pod('default', 'memok', lambda p: phase(p) in ('Succeeded', 'Failed'))
    t.is_(phase(p), 'Succeeded', 'under the memory limit: Succeeded')

    # $(VAR) from the container env, $$ escapes; workingDir when it exists
    ev = pod('vars', ('sh', '-c', 'printf "%s|%s|" "$1" "$2"; pwd', 'sh', '$(WHO)', '$$(WHO)'))
    ev['spec']['containers'][0].update(env=[{'name': 'WHO', 'value': 'kiln'}], workingDir='/tmp')
    sim.req('POST', NS, ev)
    sim.wait_pod('default', 'vars', lambda p: phase(p) == 'Succeeded')
    st, body = sim.text(NS + '/vars/log')
    t.is_(body, 'kiln|$(WHO)|/tmp\n', '$(VAR) expanded from env, $$(VAR) kept literal, workingDir used')


if __name__ == '__main__':
    sys.exit(main())
