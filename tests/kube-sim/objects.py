"""objects: Deployments (apps/v1) and Services (v1) for kube-sim (stdlib only).

A plain object store, no controllers: nothing rolls Deployments out or routes
Services.  It answers like the real apiserver does for what kiln-deploy sends:
  GET    /apis/apps/v1/namespaces/NS/deployments[/NAME]    (list: labelSelector =, ==, !=, k, !k)
  POST   /apis/apps/v1/namespaces/NS/deployments           201; 409 AlreadyExists; 422 Invalid
  PUT    /apis/apps/v1/namespaces/NS/deployments/NAME      200; 409 Conflict on a stale
                                                           resourceVersion; 404 when absent
  DELETE /apis/apps/v1/namespaces/NS/deployments/NAME      Status Success
  and the same under /api/v1/namespaces/NS/services.
Defaults (replicas, strategy, clusterIP, protocol, targetPort), generation bumps on
spec changes, immutable Deployment selectors and Service clusterIPs, name rules
(Deployments: DNS-1123 subdomain; Services: DNS-1035 label), Status bodies worded
like the server's, dryRun=All.

Control (not Kubernetes):
  POST /_sim/objects  {"namespaces": ["a", "b"] | null}   namespaces that exist (null: any);
                      a create elsewhere is 404 'namespaces "x" not found'
                      {"conflicts": N}   the next N PUTs of existing objects lose a race: the
                      object is changed first (as by another writer), so the PUT gets 409
  POST /_sim/rbac     {"user": "system:serviceaccount:NS:SA",
                       "rules": [{"apiGroups": [...], "resources": [...], "verbs": [...]}] | null}
                      a Role's rules: requests on these resources that no rule allows get
                      403 Forbidden like the RBAC authorizer's (null: everything allowed)
  GET  /_sim/objects  every stored object (for tests)

kube-sim's Handler.route() calls handle(handler) first; it returns True when it
answered the request.
"""
import copy
import json
import re
import threading
import uuid
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

DNS1123_LABEL = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')
DNS1123_SUB = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')
DNS1035_LABEL = re.compile(r'^[a-z]([-a-z0-9]*[a-z0-9])?$')
LABEL_VALUE = re.compile(r'^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$')
QUALIFIED_NAME = re.compile(r'^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$')

MSG_SUB = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
           "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
           "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
MSG_1035 = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
            "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
            "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
MSG_LABEL = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
             "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
             "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
MSG_LVALUE = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
              "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
              "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")

PATH = re.compile(r'^/(?:api/v1|apis/(apps)/v1)/namespaces/([^/]+)/(deployments|services)(?:/([^/]+))?$')
# resource -> (group, kind, name in messages)
RES = {'deployments': ('apps', 'Deployment', 'deployments.apps'),
       'services': ('', 'Service', 'services')}
VERB = {'GET': 'get', 'POST': 'create', 'PUT': 'update', 'PATCH': 'patch', 'DELETE': 'delete'}


def now_rfc3339():
    return datetime.now(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def status_obj(code, reason, message, details=None, status='Failure'):
    o = {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': status,
         'message': message, 'reason': reason, 'code': code}
    if status == 'Success':
        del o['message'], o['reason']
    if details:
        o['details'] = details
    return o


class Causes:
    def __init__(self):
        self.items = []

    def add(self, field, kind, value=None, detail=''):
        if kind == 'Required':
            msg, reason = f'{field}: Required value' + (f': {detail}' if detail else ''), 'FieldValueRequired'
        elif kind == 'Unsupported':
            msg, reason = f'{field}: Unsupported value: {json.dumps(value)}: {detail}', 'FieldValueNotSupported'
        elif kind == 'Forbidden':
            msg, reason = f'{field}: Forbidden: {detail}', 'FieldValueForbidden'
        else:
            msg, reason = f'{field}: Invalid value: {json.dumps(value)}: {detail}', 'FieldValueInvalid'
        self.items.append({'reason': reason, 'message': msg, 'field': field})


def check_labels(c, field, labels):
    if labels is None:
        return
    if not isinstance(labels, dict):
        return c.add(field, 'Invalid', labels, 'must be a map')
    for k, v in labels.items():
        prefix, _, name = k.rpartition('/')
        if '/' in k and (not prefix or len(prefix) > 253 or not DNS1123_SUB.match(prefix)):
            c.add(field, 'Invalid', k, 'prefix part ' + MSG_SUB)
        if not name or len(name) > 63 or not QUALIFIED_NAME.match(name):
            c.add(field, 'Invalid', k, 'name part must consist of alphanumeric characters, \'-\', \'_\' or '
                  '\'.\', and must start and end with an alphanumeric character')
        if not isinstance(v, str) or len(v) > 63 or not LABEL_VALUE.match(v):
            c.add(field, 'Invalid', v, 'must be no more than 63 characters'
                  if isinstance(v, str) and len(v) > 63 else MSG_LVALUE)


def check_name(c, resource, name):
    if not name:
        return c.add('metadata.name', 'Required', detail='name or generateName is required')
    if resource == 'services':
        if len(name) > 63 or not DNS1035_LABEL.match(name):
            c.add('metadata.name', 'Invalid', name, 'must be no more than 63 characters'
                  if len(name) > 63 else MSG_1035)
    elif len(name) > 253 or not DNS1123_SUB.match(name):
        c.add('metadata.name', 'Invalid', name, 'must be no more than 253 characters'
              if len(name) > 253 else MSG_SUB)


def check_containers(c, field, spec):
    ctrs = spec.get('containers') if isinstance(spec, dict) else None
    if not ctrs:
        return c.add(f'{field}.containers', 'Required')
    names = set()
    for i, ctr in enumerate(ctrs):
        f = f'{field}.containers[{i}]'
        n = ctr.get('name')
        if not n:
            c.add(f'{f}.name', 'Required')
        elif len(n) > 63 or not DNS1123_LABEL.match(n):
            c.add(f'{f}.name', 'Invalid', n, MSG_LABEL)
        elif n in names:
            c.add(f'{f}.name', 'Duplicate', n)
        names.add(n)
        if not ctr.get('image'):
            c.add(f'{f}.image', 'Required')
        for j, p in enumerate(ctr.get('ports') or []):
            cp = p.get('containerPort')
            if not isinstance(cp, int) or not 1 <= cp <= 65535:
                c.add(f'{f}.ports[{j}].containerPort', 'Invalid', cp, 'must be between 1 and 65535, inclusive')


def selector_matches(sel, labels):
    ml = (sel or {}).get('matchLabels') or {}
    return all((labels or {}).get(k) == v for k, v in ml.items())


def validate_deployment(obj, old):
    c = Causes()
    spec = obj.get('spec')
    if not isinstance(spec, dict):
        c.add('spec', 'Required')
        return c.items
    sel = spec.get('selector')
    tmpl = spec.get('template') or {}
    tlabels = (tmpl.get('metadata') or {}).get('labels') or {}
    if not sel or not (sel.get('matchLabels') or sel.get('matchExpressions')):
        c.add('spec.selector', 'Required')
    else:
        check_labels(c, 'spec.selector.matchLabels', sel.get('matchLabels'))
        if not selector_matches(sel, tlabels):
            c.add('spec.template.metadata.labels', 'Invalid', tlabels, '`selector` does not match template `labels`')
    check_labels(c, 'spec.template.metadata.labels', tlabels)
    rep = spec.get('replicas', 1)
    if not isinstance(rep, int) or rep < 0:
        c.add('spec.replicas', 'Invalid', rep, 'must be greater than or equal to 0')
    st = spec.get('strategy') or {}
    typ = st.get('type', 'RollingUpdate')
    if typ not in ('Recreate', 'RollingUpdate'):
        c.add('spec.strategy.type', 'Unsupported', typ, 'supported values: "Recreate", "RollingUpdate"')
    if typ == 'Recreate' and st.get('rollingUpdate'):
        c.add('spec.strategy.rollingUpdate', 'Forbidden', detail='may not be specified when strategy `type` is '
              "'Recreate'")
    tspec = tmpl.get('spec')
    if not isinstance(tspec, dict):
        c.add('spec.template.spec', 'Required')
    else:
        check_containers(c, 'spec.template.spec', tspec)
        rp = tspec.get('restartPolicy', 'Always')
        if rp != 'Always':
            c.add('spec.template.spec.restartPolicy', 'Unsupported', rp, 'supported values: "Always"')
    if old is not None and sel != old['spec'].get('selector'):
        c.add('spec.selector', 'Invalid', sel, 'field is immutable')
    return c.items


def validate_service(obj, old):
    c = Causes()
    spec = obj.get('spec')
    if not isinstance(spec, dict):
        c.add('spec', 'Required')
        return c.items
    typ = spec.get('type', 'ClusterIP')
    if typ not in ('ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'):
        c.add('spec.type', 'Unsupported', typ, 'supported values: "ClusterIP", "ExternalName", '
              '"LoadBalancer", "NodePort"')
    ports = spec.get('ports') or []
    if not ports and typ != 'ExternalName' and spec.get('clusterIP') != 'None':
        c.add('spec.ports', 'Required')
    names = set()
    for i, p in enumerate(ports):
        port = p.get('port')
        if not isinstance(port, int) or not 1 <= port <= 65535:
            c.add(f'spec.ports[{i}].port', 'Invalid', port, 'must be between 1 and 65535, inclusive')
        if len(ports) > 1 and not p.get('name'):
            c.add(f'spec.ports[{i}].name', 'Required')
        if p.get('name') in names:
            c.add(f'spec.ports[{i}].name', 'Duplicate', p.get('name'))
        names.add(p.get('name'))
        if p.get('protocol', 'TCP') not in ('TCP', 'UDP', 'SCTP'):
            c.add(f'spec.ports[{i}].protocol', 'Unsupported', p.get('protocol'),
                  'supported values: "SCTP", "TCP", "UDP"')
    check_labels(c, 'spec.selector', spec.get('selector'))
    if old is not None and spec.get('clusterIP') and spec['clusterIP'] != old['spec'].get('clusterIP'):
        c.add('spec.clusterIP', 'Invalid', spec['clusterIP'], 'field is immutable')
    return c.items


def default_deployment(obj):
    spec = obj['spec']
    spec.setdefault('replicas', 1)
    spec.setdefault('revisionHistoryLimit', 10)
    spec.setdefault('progressDeadlineSeconds', 600)
    st = spec.setdefault('strategy', {'type': 'RollingUpdate'})
    if st.get('type', 'RollingUpdate') == 'RollingUpdate':
        st['type'] = 'RollingUpdate'
        st.setdefault('rollingUpdate', {}).setdefault('maxUnavailable', '25%')
        st['rollingUpdate'].setdefault('maxSurge', '25%')
    tspec = spec['template']['spec']
    tspec.setdefault('restartPolicy', 'Always')
    tspec.setdefault('dnsPolicy', 'ClusterFirst')
    tspec.setdefault('terminationGracePeriodSeconds', 30)
    tspec.setdefault('schedulerName', 'default-scheduler')
    for ctr in tspec['containers']:
        ctr.setdefault('terminationMessagePath', '/dev/termination-log')
        ctr.setdefault('terminationMessagePolicy', 'File')
        ctr.setdefault('imagePullPolicy', 'Always' if ctr['image'].endswith(':latest') or ':' not in
                       ctr['image'].rsplit('/', 1)[-1] else 'IfNotPresent')
        for p in ctr.get('ports') or []:
            p.setdefault('protocol', 'TCP')


class Store:
    def __init__(self):
        self.lock = threading.Lock()
        self.rv = 1000
        self.objs = {}             # (resource, ns, name) -> object
        self.namespaces = None     # None: every namespace exists
        self.rbac = None           # (user, rules) or None
        self.next_ip = 10
        self.conflicts = 0         # PUTs that lose a race with another writer
        self.puts = 0

    def cluster_ip(self):
        self.next_ip += 1
        return f'10.96.{self.next_ip // 250}.{self.next_ip % 250 + 1}'


STORE = Store()


def allowed(resource, verb):
    if STORE.rbac is None:
        return True
    group = RES[resource][0]
    for r in STORE.rbac[1]:
        if (group in r.get('apiGroups', []) or '*' in r.get('apiGroups', [])) and \
           (resource in r.get('resources', []) or '*' in r.get('resources', [])) and \
           (verb in r.get('verbs', []) or '*' in r.get('verbs', [])):
            return True
    return False


def parse_selector(s):
    reqs = []
    for part in filter(None, (p.strip() for p in (s or '').split(','))):
        m = re.match(r'^(!?)([^=!]+?)\s*(?:(==|=|!=)\s*(.*))?$', part)
        if not m:
            raise ValueError(f'unable to parse requirement: {part}')
        neg, key, op, val = m.groups()
        reqs.append((key, '!' if neg else (op or 'exists'), val))
    return reqs


def match(reqs, labels):
    for key, op, val in reqs:
        have = labels.get(key)
        if op == '!' and key in labels or op == 'exists' and key not in labels:
            return False
        if op in ('=', '==') and have != val or op == '!=' and have == val:
            return False
    return True


def control(h, path):
    raw = h.read_body()
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        h.send_json(400, {'error': 'bad json'})
        return True
    with STORE.lock:
        if path == '/_sim/objects' and h.command == 'GET':
            out = {'items': [copy.deepcopy(o) for _, o in sorted(STORE.objs.items())]}
        elif path == '/_sim/objects':
            if 'namespaces' in body:
                STORE.namespaces = None if body['namespaces'] is None else set(body['namespaces'])
            if 'conflicts' in body:
                STORE.conflicts = int(body['conflicts'])
            out = {'namespaces': sorted(STORE.namespaces) if STORE.namespaces is not None else None,
                   'conflicts': STORE.conflicts, 'puts': STORE.puts}
        else:
            if body.get('rules') is None:
                STORE.rbac = None
            else:
                STORE.rbac = (body.get('user', 'system:anonymous'), list(body['rules']))
            out = {'rbac': STORE.rbac}
    h.send_json(200, out)
    return True


def handle(h):
    """Answers requests for the resources above; False leaves the request to kube-sim."""
    u = urlsplit(h.path)
    if u.path in ('/_sim/objects', '/_sim/rbac'):
        return control(h, u.path)
    m = PATH.match(u.path)
    if not m:
        return False
    group, ns, resource, name = m.groups()
    if (group or '') != RES[resource][0]:
        return False
    if not h.authorized() or h.injected():
        return True
    q = {k: v[-1] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
    cmd = h.command
    verb = 'list' if cmd == 'GET' and name is None else VERB.get(cmd, cmd.lower())
    rname = RES[resource][2]
    if not allowed(resource, verb):
        user = STORE.rbac[0]
        what = f'{rname} "{name}"' if name else rname
        h.send_json(403, status_obj(403, 'Forbidden',
                                    f'{what} is forbidden: User "{user}" cannot {verb} resource "{resource}" in '
                                    f'API group "{RES[resource][0]}" in the namespace "{ns}"',
                                    {'name': name, 'group': RES[resource][0], 'kind': resource}
                                    if name else {'group': RES[resource][0], 'kind': resource}))
        return True
    if name is None and cmd == 'POST':
        write(h, resource, ns, None, q)
    elif name is None and cmd == 'GET':
        list_(h, resource, ns, q)
    elif name is not None and cmd == 'GET':
        with STORE.lock:
            obj = copy.deepcopy(STORE.objs.get((resource, ns, name)))
        if obj is None:
            not_found(h, resource, name)
        else:
            h.send_json(200, obj)
    elif name is not None and cmd == 'PUT':
        write(h, resource, ns, name, q)
    elif name is not None and cmd == 'DELETE':
        with STORE.lock:
            obj = STORE.objs.pop((resource, ns, name), None)
        if obj is None:
            not_found(h, resource, name)
        else:
            h.send_json(200, status_obj(200, None, None, {'name': name, 'group': RES[resource][0],
                                                          'kind': resource, 'uid': obj['metadata']['uid']},
                                        status='Success'))
    else:
        h.send_json(405, status_obj(405, 'MethodNotAllowed',
                                    'the server does not allow this method on the requested resource'))
    return True


def not_found(h, resource, name):
    group, _, rname = RES[resource]
    h.send_json(404, status_obj(404, 'NotFound', f'{rname} "{name}" not found',
                                {'name': name, 'group': group, 'kind': resource}))


def list_(h, resource, ns, q):
    try:
        reqs = parse_selector(q.get('labelSelector'))
    except ValueError as e:
        return h.send_json(400, status_obj(400, 'BadRequest', str(e)))
    with STORE.lock:
        items = [copy.deepcopy(o) for (r, n, _), o in sorted(STORE.objs.items()) if r == resource and n == ns]
        rv = str(STORE.rv)
    items = [o for o in items if match(reqs, o['metadata'].get('labels') or {})]
    group, kind, _ = RES[resource]
    h.send_json(200, {'kind': kind + 'List', 'apiVersion': f'{group}/v1' if group else 'v1',
                      'metadata': {'resourceVersion': rv}, 'items': items})


def write(h, resource, ns, url_name, q):
    """POST (url_name None) or PUT."""
    group, kind, rname = RES[resource]
    api = f'{group}/v1' if group else 'v1'
    try:
        obj = json.loads(h.read_body() or b'null')
        assert isinstance(obj, dict)
    except (ValueError, AssertionError):
        return h.send_json(400, status_obj(400, 'BadRequest', 'the object provided is unrecognized or malformed'))
    if obj.get('kind') != kind or obj.get('apiVersion') != api:
        return h.send_json(400, status_obj(400, 'BadRequest', f'the API version in the data '
                                           f'({obj.get("apiVersion")}) does not match the expected API '
                                           f'version ({api})' if obj.get('apiVersion') != api else
                                           f'the kind in the data ({obj.get("kind")}) does not match the '
                                           f'expected kind ({kind})'))
    meta = obj.setdefault('metadata', {})
    if not isinstance(meta, dict):
        return h.send_json(400, status_obj(400, 'BadRequest', 'the object provided is unrecognized or malformed'))
    if meta.get('namespace') and meta['namespace'] != ns:
        return h.send_json(400, status_obj(400, 'BadRequest', 'the namespace of the provided object does not '
                                           'match the namespace sent on the request'))
    name = meta.get('name') or ''
    if url_name is not None and name != url_name:
        return h.send_json(400, status_obj(400, 'BadRequest', f'the name of the object ({name}) does not match '
                                           f'the name on the URL ({url_name})'))
    if url_name is None and STORE.namespaces is not None and ns not in STORE.namespaces:
        return h.send_json(404, status_obj(404, 'NotFound', f'namespaces "{ns}" not found',
                                           {'name': ns, 'kind': 'namespaces'}))
    c = Causes()
    check_name(c, resource, name)
    check_labels(c, 'metadata.labels', meta.get('labels'))
    with STORE.lock:
        old = STORE.objs.get((resource, ns, name))
        if url_name is not None and old is None:
            return not_found(h, resource, name)
        if url_name is not None:
            STORE.puts += 1
        if url_name is not None and STORE.conflicts > 0:
            # Another writer got there first: a new resourceVersion.
            STORE.conflicts -= 1
            STORE.rv += 1
            old['metadata']['resourceVersion'] = str(STORE.rv)
        if url_name is None and old is not None:
            return h.send_json(409, status_obj(409, 'AlreadyExists', f'{rname} "{name}" already exists',
                                               {'name': name, 'group': group, 'kind': resource}))
        if old is not None and meta.get('resourceVersion') and meta['resourceVersion'] != \
                old['metadata']['resourceVersion']:
            return h.send_json(409, status_obj(409, 'Conflict', f'Operation cannot be fulfilled on {rname} '
                                               f'"{name}": the object has been modified; please apply your '
                                               'changes to the latest version and try again',
                                               {'name': name, 'group': group, 'kind': resource}))
        if resource == 'services' and old is not None:
            # The server keeps allocated values a PUT leaves out (1.20+).
            spec = obj.get('spec')
            if isinstance(spec, dict) and not spec.get('clusterIP'):
                spec['clusterIP'] = old['spec']['clusterIP']
                spec['clusterIPs'] = old['spec']['clusterIPs']
        if not c.items:
            c.items += (validate_deployment if resource == 'deployments' else validate_service)(obj, old)
        if c.items:
            msg = f'{kind}{"." + group if group else ""} "{name}" is invalid: ' + (
                c.items[0]['message'] if len(c.items) == 1 else
                '[' + ', '.join(x['message'] for x in c.items) + ']')
            return h.send_json(422, status_obj(422, 'Invalid', msg, {'name': name, 'group': group,
                                                                    'kind': kind, 'causes': c.items}))
        if resource == 'deployments':
            default_deployment(obj)
        else:
            spec = obj['spec']
            spec.setdefault('type', 'ClusterIP')
            spec.setdefault('sessionAffinity', 'None')
            if not spec.get('clusterIP'):
                spec['clusterIP'] = STORE.cluster_ip()
                spec['clusterIPs'] = [spec['clusterIP']]
            for p in spec.get('ports') or []:
                p.setdefault('protocol', 'TCP')
                p.setdefault('targetPort', p['port'])
        meta['namespace'] = ns
        if old is None:
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=now_rfc3339())
            gen = 1
        else:
            meta.update(uid=old['metadata']['uid'], creationTimestamp=old['metadata']['creationTimestamp'])
            gen = old['metadata'].get('generation', 1) + (obj['spec'] != old['spec'])
        if resource == 'deployments':
            meta['generation'] = gen
            obj['status'] = {'observedGeneration': gen}
        if q.get('dryRun') == 'All':
            meta['resourceVersion'] = old['metadata']['resourceVersion'] if old else ''
            return h.send_json(201 if old is None else 200, obj)
        STORE.rv += 1
        meta['resourceVersion'] = str(STORE.rv)
        STORE.objs[(resource, ns, name)] = obj
        out = copy.deepcopy(obj)
    h.send_json(201 if url_name is None else 200, out)
