#!/usr/bin/env python3
"""Pods built by kube_pod_build (written by kube-podgen into PODDIR): valid
against the official OpenAPI schema, accepted by kube-sim, and the runnable
one runs to Succeeded with its log read through the API.  (TAP)
  test_podgen.py PODDIR SWAGGER|-"""
import copy
import json
import os
import sys

from k8s_schema import Validator
from simclient import Sim, Tap


def main():
    t = Tap()
    poddir, swagger = sys.argv[1], sys.argv[2]
    files = sorted(f for f in os.listdir(poddir) if f.endswith('.json'))
    t.is_(files, ['full.json', 'minimal.json', 'runnable.json', 'templated.json'],
          'kube-podgen wrote the four pods')
    pods = {f[:-5]: json.load(open(os.path.join(poddir, f))) for f in files}
    if swagger == '-' or not os.path.exists(swagger):
        for name in pods:
            print(f'ok {t.n + 1} # SKIP {name}: the OpenAPI schema (../shared/k8s) is not here')
            t.n += 1
    else:
        v = Validator(json.load(open(swagger)))
        for name, p in pods.items():
            v.errors = []
            v.check(p, {'$ref': '#/definitions/io.k8s.api.core.v1.Pod'}, '')
            t.ok(not v.errors, f'{name}: valid io.k8s.api.core.v1.Pod', '\n'.join(v.errors))
        broken = copy.deepcopy(pods['full'])
        broken['spec']['containers'][0]['resources']['limits']['cpu'] = 2
        broken['spec']['activeDeadlineSeconds'] = '600'
        broken['spec']['containers'][0]['volumeMount'] = []
        del broken['spec']['containers'][0]['name']
        v.errors = []
        v.check(broken, {'$ref': '#/definitions/io.k8s.api.core.v1.Pod'}, '')
        t.is_(sorted(e.split(':')[0] for e in v.errors),
              sorted(['.spec.activeDeadlineSeconds', '.spec.containers[0].name',
                      '.spec.containers[0].resources.limits[cpu]', '.spec.containers[0].volumeMount']),
              'the validator catches a wrong type, a missing and an unknown field')

    full, tp = pods['full']['spec'], pods['templated']
    t.is_((full.get('runtimeClassName'), sorted(full.get('affinity', {}))),
          ('nvidia', ['nodeAffinity', 'podAntiAffinity']), 'full: runtimeClassName and affinity emitted')
    ctrs = tp['spec']['containers']
    t.is_([c['name'] for c in ctrs], ['main', 'log-shipper'],
          'templated: the task container first, the sidecar kept')
    main = ctrs[0]
    t.is_((main['image'], 'args' in main, main['securityContext'], main['resources']['limits']),
          ('busybox:1.36', False, {'allowPrivilegeEscalation': False}, {'memory': '2Gi', 'cpu': '1'}),
          'templated: kiln image, no template args, template settings and limits merged')
    t.is_(sorted(e['name'] for e in main['env']), ['FROM_TEMPLATE', 'KILN_TASK'], 'templated: env merged by name')
    t.is_(sorted(v['name'] for v in tp['spec']['volumes']), ['certs', 'data'], 'templated: template and task volumes')
    labels = tp['metadata']['labels']
    t.is_((labels['team'], labels['kiln.io/dag'], tp['metadata']['annotations']['example.com/owner']),
          ('ml', 'etl_daily', 'data-team'), 'templated: template labels kept, kiln.io keys win')
    t.is_((tp['spec']['runtimeClassName'], tp['spec']['priorityClassName'], tp['spec']['restartPolicy']),
          ('gvisor', 'batch-low', 'Never'), 'templated: runtimeClassName, template spec fields, restartPolicy Never')

    sim = Sim('--strict-pod-names')
    try:
        ns = '/api/v1/namespaces/default/pods'
        for name, p in pods.items():
            st, body, _ = sim.req('POST', ns, p)
            t.is_(st, 201, f'{name}: kube-sim accepts it (strict names)')
            if st != 201:
                print('#   ' + json.dumps(body)[:600])
        rn = pods['runnable']['metadata']['name']
        p = sim.wait_pod('default', rn, lambda p: p['status'].get('phase') in ('Succeeded', 'Failed'))
        t.is_(p['status'].get('phase'), 'Succeeded', 'the runnable pod runs to Succeeded')
        st, log = sim.text(f'{ns}/{rn}/log?follow=true')
        t.is_((st, log), (200, 'hello from extract\nto-stderr\n'), 'its log (env applied) through the log endpoint')
        st, l, _ = sim.req('GET', ns + '?labelSelector=kiln.io%2Finstance%3Dit-instance%2Ckiln.io%2Ftry%3D2')
        t.is_([i['metadata']['name'] for i in l['items']], [rn], 'found again by its kiln.io labels')
        ann = l['items'][0]['metadata']['annotations']
        t.is_((ann['kiln.io/dag-id'], ann['kiln.io/run-id']), ('ÜberDAG', 'manual__2026-01-02T03:04:05+00:00'),
              'annotations carry the exact ids')
        st, s, _ = sim.req('POST', ns, pods['runnable'])
        t.is_((st, s.get('reason')), (409, 'AlreadyExists'), 'the same try again: 409 AlreadyExists (the adoption path)')
    finally:
        sim.stop()
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
