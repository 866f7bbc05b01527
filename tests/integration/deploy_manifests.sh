#!/bin/sh
# deploy/: every manifest against the official Kubernetes OpenAPI schema
# (../shared/k8s beside the checkout, through tests/kube-sim/k8s_schema.py;
# those checks SKIP when it is absent), kustomization.yaml against the files,
# the Roles' exact verbs, the daemon's Deployment (one replica, Recreate,
# probes, non-root, volumes and Service wired to what exists), and
# deploy/model-serve.yaml rendered by sed == what kiln-deploy renders.
set -u
: "${KILN_BIN:?}" "${SRCDIR:=.}"
PY=python3
export PYTHONDONTWRITEBYTECODE=1
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
DEPLOY=${KILN_DEPLOY:-$(dirname "$KILN_BIN")/tasks/deploy/kiln-deploy}
SWAGGER=${KUBE_SWAGGER:-$SRCDIR/../shared/k8s/kubernetes_swagger_release-1.36.json}
[ -f "$SWAGGER" ] || SWAGGER=-
T=$(mktemp -d /tmp/kiln-manifests.XXXXXX)
trap 'rm -rf "$T"' EXIT
# The template with unusual values, and kiln-deploy's rendering of the same.
sed -e 's/@MODEL@/fraud-v2/g' -e 's/@VERSION@/17/g' -e 's/@NAMESPACE@/ml-prod/g' \
    -e 's,@IMAGE@,registry.example.com/kiln-tasks@sha256:0123,g' -e 's/@CLAIM@/models-rwx/g' \
    "$SRCDIR/deploy/model-serve.yaml" > "$T/model-serve.yaml"
if ! "$DEPLOY" render --name fraud-v2 --version 17 --namespace ml-prod \
        --image registry.example.com/kiln-tasks@sha256:0123 --claim models-rwx > "$T/render.json" 2> "$T/render.err"; then
    echo "not ok 1 - kiln-deploy render"; sed 's/^/#   /' "$T/render.err"; echo "1..1"; exit 1
fi
cd "$SRCDIR" && exec "$PY" - "$SWAGGER" "$T" <<'EOF'
import copy
import glob
import json
import os
import sys

import yaml

sys.path.insert(0, 'tests/kube-sim')
from k8s_schema import Validator  # noqa: E402
from simclient import Tap  # noqa: E402

t = Tap()
swagger, tmp = sys.argv[1], sys.argv[2]
files = sorted(os.path.basename(f) for f in glob.glob('deploy/*.yaml'))
docs = {}      # file -> [objects]
for f in files:
    path = os.path.join(tmp, f) if f == 'model-serve.yaml' else os.path.join('deploy', f)
    try:
        docs[f] = [d for d in yaml.safe_load_all(open(path)) if d is not None]
        t.ok(True, f'{f} is YAML')
    except yaml.YAMLError as e:
        t.ok(False, f'{f} is YAML', e)
        docs[f] = []
kust = docs.pop('kustomization.yaml', [{}])[0]
objs = [(f, o) for f, ds in docs.items() for o in ds]
by_kind = {}
for f, o in objs:
    by_kind.setdefault(o.get('kind'), {})[o.get('metadata', {}).get('name')] = o


def definition(defs, o):
    group, _, version = o.get('apiVersion', '').rpartition('/')
    for name, d in defs.items():
        for gvk in d.get('x-kubernetes-group-version-kind', []):
            if (gvk.get('group'), gvk.get('version'), gvk.get('kind')) == (group, version, o.get('kind')):
                return name
    return None


rendered = json.load(open(os.path.join(tmp, 'render.json')))['items']
if swagger == '-' or not os.path.exists(swagger):
    for f, o in objs + [('kiln-deploy render', o) for o in rendered]:
        t.n += 1
        print(f'ok {t.n} # SKIP {f} {o.get("kind")}: the OpenAPI schema (../shared/k8s) is not here')
else:
    v = Validator(json.load(open(swagger)))
    for f, o in objs + [('kiln-deploy render', o) for o in rendered]:
        d = definition(v.defs, o)
        v.errors = []
        if d:
            v.check(o, {'$ref': '#/definitions/' + d}, '')
        t.ok(d and not v.errors, f'{f}: {o.get("kind")} {o["metadata"].get("name")} is a valid {d}',
             '\n'.join(v.errors) or f'no definition for {o.get("apiVersion")} {o.get("kind")}')
    # The validator is not blind: a typo'd field and a wrong type are caught.
    broken = copy.deepcopy(by_kind['Deployment']['kiln'])
    broken['spec']['replica'] = 1
    broken['spec']['template']['spec']['containers'][0]['ports'][0]['containerPort'] = '8080'
    v.errors = []
    v.check(broken, {'$ref': '#/definitions/io.k8s.api.apps.v1.Deployment'}, '')
    t.is_(sorted(e.split(':')[0] for e in v.errors),
          ['.spec.replica', '.spec.template.spec.containers[0].ports[0].containerPort'],
          'a broken Deployment is refused by the schema check')

# kustomization.yaml lists every manifest but the optional and the template.
t.is_(sorted(kust.get('resources', [])),
      sorted(set(files) - {'kustomization.yaml', 'rbac-nodes.yaml', 'model-serve.yaml'}),
      'kustomization.yaml lists every manifest except rbac-nodes.yaml and model-serve.yaml')
t.is_(kust.get('namespace'), 'kiln', 'kustomization namespace kiln')
t.ok(all(o['metadata'].get('namespace') == 'kiln' for f, o in objs
         if f != 'model-serve.yaml' and o['kind'] not in ('Namespace', 'ClusterRole', 'ClusterRoleBinding')),
     'every namespaced object is in namespace kiln')


def verbs(role):
    out = {}
    for r in role.get('rules', []):
        for g in r.get('apiGroups', []):
            for res in r.get('resources', []):
                out.setdefault(f'{g}/{res}', set()).update(r.get('verbs', []))
    return {k: sorted(v) for k, v in out.items()}


roles = by_kind.get('Role', {})
t.is_(verbs(roles.get('kiln-executor', {})),
      {'/pods': ['create', 'delete', 'get', 'list', 'watch'], '/pods/log': ['get']},
      'executor Role: pods create/get/list/watch/delete, pods/log get, nothing else')
t.is_(verbs(by_kind.get('ClusterRole', {}).get('kiln-node-reader', {})), {'/nodes': ['list']},
      'optional ClusterRole: nodes list only')
t.is_(verbs(roles.get('kiln-model-deployer', {})),
      {'apps/deployments': ['create', 'get', 'update'], '/services': ['create', 'get', 'update']},
      "deploy step's Role: deployments and services get/create/update, nothing else")
for kind, rkind in (('RoleBinding', 'Role'), ('ClusterRoleBinding', 'ClusterRole')):
    for name, b in by_kind.get(kind, {}).items():
        sa = b['subjects'][0]
        t.ok(b['roleRef']['kind'] == rkind and b['roleRef']['name'] in by_kind.get(rkind, {}) and
             sa['kind'] == 'ServiceAccount' and sa['name'] in by_kind.get('ServiceAccount', {}),
             f'{kind} {name} binds {rkind} {b["roleRef"]["name"]} to ServiceAccount {sa["name"]}, both defined')

d = by_kind['Deployment']['kiln']
spec, pod = d['spec'], d['spec']['template']['spec']
c = pod['containers'][0]
t.is_((spec['replicas'], spec['strategy']['type']), (1, 'Recreate'), 'daemon: one replica, Recreate')
t.ok(all(c[p]['httpGet']['path'] == '/healthz' for p in ('readinessProbe', 'livenessProbe', 'startupProbe')),
     'daemon: probes on /healthz')
ports = {p['name']: p['containerPort'] for p in c['ports']}
t.ok(all(c[p]['httpGet']['port'] in ports for p in ('readinessProbe', 'livenessProbe')), 'probes use a named port')
sc = pod['securityContext']
t.ok(sc['runAsNonRoot'] and sc['runAsUser'] != 0 and c['securityContext']['allowPrivilegeEscalation'] is False,
     'daemon: non-root, no privilege escalation')
t.is_(pod['serviceAccountName'] in by_kind['ServiceAccount'], True, 'daemon: its ServiceAccount exists')
claims = [v['persistentVolumeClaim']['claimName'] for v in pod['volumes'] if 'persistentVolumeClaim' in v]
t.ok(claims and all(x in by_kind['PersistentVolumeClaim'] for x in claims), f'daemon: PVCs {claims} exist')
cms = [v['configMap']['name'] for v in pod['volumes'] if 'configMap' in v]
t.ok(all(x in by_kind['ConfigMap'] for x in cms), f'daemon: ConfigMaps {cms} exist')
mounts = {m['name'] for m in c['volumeMounts']}
t.is_(mounts, {v['name'] for v in pod['volumes']}, 'daemon: every volume mounted, every mount a volume')
env = {e['name']: e for e in c['env']}
t.ok(env['KILN_BIND']['value'] == '0.0.0.0' and 'secretKeyRef' in env['KILN_API_TOKEN']['valueFrom'],
     'daemon: binds 0.0.0.0, API token from a Secret')
svc = by_kind['Service']['kiln']
labels = d['spec']['template']['metadata']['labels']
t.ok(all(labels.get(k) == v for k, v in svc['spec']['selector'].items()) and
     all(p['targetPort'] in ports for p in svc['spec']['ports']) and svc['spec']['type'] == 'ClusterIP',
     'UI Service: ClusterIP, selects the daemon pod, targets its named port')
t.ok(all(labels.get(k) == v for k, v in spec['selector']['matchLabels'].items()), 'daemon: selector matches')
cfg = yaml.safe_load(by_kind['ConfigMap']['kiln-dags']['data']['hello.yaml'])
t.ok(isinstance(cfg.get('tasks'), dict) and cfg.get('dag') == 'hello', 'the example DAG has the DAG shape')

# deploy/model-serve.yaml (sed) and kiln-deploy render: the same objects.
tmpl = docs['model-serve.yaml']
t.is_([o['kind'] for o in tmpl], ['Deployment', 'Service'], 'model-serve.yaml: a Deployment and a Service')
for a, b in zip(tmpl, rendered):
    t.ok(a == b, f'model-serve.yaml {a["kind"]} == kiln-deploy render',
         json.dumps(a, sort_keys=True) + '\n' + json.dumps(b, sort_keys=True))
md = tmpl[0]
mc = md['spec']['template']['spec']['containers'][0]
t.is_(mc['args'][mc['args'].index('--version') + 1], '17', 'model-serve: kiln-serve pinned to the version')
t.is_(md['spec']['template']['metadata']['labels']['kiln.io/model-version'], '17', 'model-serve: version label')
t.ok('kiln.io/model-version' not in md['spec']['selector']['matchLabels'] and
     'kiln.io/model-version' not in tmpl[1]['spec']['selector'],
     'model-serve: selectors do not name the version (a new version updates in place)')
sys.exit(t.done())
EOF
