"""Test-side helpers for kube-sim and for real apiservers (stdlib only).

connect(*sim_args) gives a client a test can use unchanged on both:
  - KUBECONFIG unset: starts kube-sim.py (plain http) with sim_args -> Sim
  - KUBECONFIG set:   talks to that cluster (https, CA, token / client cert / exec plugin) -> Remote
api.is_sim says whether kube-sim answers (only it has /_sim/faults: fault-injection tests
skip on a real server); api.kind is 'sim', or KUBE_SIM_KIND ('real' for the local
kube-apiserver with sim-kubelet.py, 'cluster' otherwise).
"""
import base64
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from urllib.parse import urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------- kubeconfig
def _scalar(v):
    v = v.strip()
    if len(v) >= 2 and v[0] == v[-1] and v[0] in '"\'':
        return v[1:-1]
    if v in ('true', 'false'):
        return v == 'true'
    if v in ('null', '~', ''):
        return None
    return v


def _mini_yaml(text):
    """Block-style YAML as kubeconfigs are written (maps, lists of maps, scalars,
    flow lists of scalars) for when PyYAML is missing."""
    lines = []
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith('#'):
            continue
        lines.append((len(raw) - len(raw.lstrip(' ')), raw.strip()))
    pos = 0

    def block(indent):
        nonlocal pos
        if pos < len(lines) and lines[pos][1].startswith('- '):
            out = []
            while pos < len(lines) and lines[pos][0] == indent and lines[pos][1].startswith('- '):
                ind, txt = lines[pos]
                lines[pos] = (ind + 2, txt[2:])
                out.append(block(ind + 2) if ':' in txt[2:] else _scalar(lines.pop(pos)[1]))
            return out
        out = {}
        while pos < len(lines) and lines[pos][0] == indent and not lines[pos][1].startswith('- '):
            k, _, v = lines[pos][1].partition(':')
            pos += 1
            v = v.strip()
            if v.startswith('['):
                out[k.strip()] = [_scalar(x) for x in v.strip('[]').split(',') if x.strip()]
            elif v.startswith('{'):
                out[k.strip()] = {a.strip(): _scalar(b) for a, _, b in
                                  (x.partition(':') for x in v.strip('{}').split(',') if x.strip())}
            elif v:
                out[k.strip()] = _scalar(v)
            elif pos < len(lines) and (lines[pos][0] > indent or
                                       (lines[pos][0] == indent and lines[pos][1].startswith('- '))):
                out[k.strip()] = block(lines[pos][0])
            else:
                out[k.strip()] = None
        return out
    return block(lines[0][0]) if lines else {}


def load_kubeconfig(path, context=None):
    """-> {'server', 'ca_file', 'insecure', 'token', 'cert_file', 'key_file', 'namespace'}."""
    with open(path) as f:
        text = f.read()
    try:
        import yaml
        cfg = yaml.safe_load(text)
    except ImportError:
        cfg = json.loads(text) if text.lstrip().startswith('{') else _mini_yaml(text)
    base = os.path.dirname(os.path.abspath(path))

    def named(kind, name):
        for item in cfg.get(kind) or []:
            if item.get('name') == name:
                return item
        raise ValueError(f'{path}: no {kind[:-1]} named {name!r}')
    ctx = named('contexts', context or cfg.get('current-context'))['context']
    cluster = named('clusters', ctx['cluster'])['cluster']
    user = named('users', ctx['user'])['user'] if ctx.get('user') else {}
    tmp = []

    def file_of(d, key):
        if d.get(key + '-data'):
            tmp.append(tmp[0] if tmp else tempfile.mkdtemp(prefix='kubeconfig.'))
            p = os.path.join(tmp[0], key)
            with open(p, 'wb') as f:
                f.write(base64.b64decode(d[key + '-data']))
            return p
        if d.get(key):
            return os.path.join(base, d[key])
        return None
    token = user.get('token')
    if not token and user.get('tokenFile'):
        with open(os.path.join(base, user['tokenFile'])) as f:
            token = f.read().strip()
    if not token and user.get('exec'):
        ex = user['exec']
        env = dict(os.environ, **{e['name']: e['value'] for e in ex.get('env') or []})
        out = subprocess.run([ex['command']] + list(ex.get('args') or []), env=env, capture_output=True,
                             check=True, timeout=60).stdout
        token = json.loads(out)['status'].get('token')
    return {'server': cluster['server'], 'ca_file': file_of(cluster, 'certificate-authority'),
            'insecure': bool(cluster.get('insecure-skip-tls-verify')), 'token': token,
            'cert_file': file_of(user, 'client-certificate'), 'key_file': file_of(user, 'client-key'),
            'namespace': ctx.get('namespace') or 'default'}


# ---------------------------------------------------------------- the client
class Api:
    is_sim = False
    kind = 'real'

    def setup(self, server, ca_file=None, insecure=False, token=None, cert_file=None, key_file=None):
        u = urlsplit(server)
        self.scheme = u.scheme
        self.host = u.hostname
        self.port = u.port or (443 if u.scheme == 'https' else 80)
        self.token = token
        self.ctx = None
        if u.scheme == 'https':
            self.ctx = ssl.create_default_context(cafile=ca_file)
            if insecure:
                self.ctx.check_hostname = False
                self.ctx.verify_mode = ssl.CERT_NONE
            if cert_file:
                self.ctx.load_cert_chain(cert_file, key_file)

    def conn(self, timeout):
        if self.ctx:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self.ctx)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def headers(self):
        return {'Authorization': f'Bearer {self.token}'} if self.token else {}

    def req(self, method, path, body=None, ctype='application/json', timeout=10):
        c = self.conn(timeout)
        data = json.dumps(body) if isinstance(body, (dict, list)) else body
        hdrs = self.headers()
        if data is not None:
            hdrs['Content-Type'] = ctype
        c.request(method, path, body=data, headers=hdrs)
        r = c.getresponse()
        raw = r.read()
        c.close()
        try:
            obj = json.loads(raw) if raw else None
        except ValueError:
            obj = raw.decode()
        return r.status, obj, r

    def text(self, path, timeout=10):
        c = self.conn(timeout)
        c.request('GET', path, headers=self.headers())
        r = c.getresponse()
        raw = r.read()
        c.close()
        return r.status, raw.decode()

    def watch(self, path, until=None, timeout=10):
        """Reads events until until(events) is true, the stream ends or timeout.
        Returns (http status, events, clean) where clean means the stream ended
        with the last chunk (a server-side close, not a dropped connection).
        Reads the socket itself: http.client hides a missing last chunk."""
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        if self.ctx:
            sock = self.ctx.wrap_socket(sock, server_hostname=self.host)
        hdrs = ''.join(f'{k}: {v}\r\n' for k, v in self.headers().items())
        sock.sendall(f'GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{hdrs}\r\n'.encode())
        f = sock.makefile('rb')
        status = int(f.readline().split()[1])
        chunked = False
        while True:
            h = f.readline()
            if h in (b'\r\n', b''):
                break
            if h.lower().startswith(b'transfer-encoding:') and b'chunked' in h.lower():
                chunked = True
        events, clean, buf = [], False, b''
        end = time.time() + timeout
        try:
            while chunked and time.time() < end:
                size_line = f.readline()
                if not size_line:
                    break
                n = int(size_line.strip() or b'x', 16)
                if n == 0:
                    clean = True
                    break
                buf += f.read(n)
                f.read(2)
                while b'\n' in buf:
                    line, buf = buf.split(b'\n', 1)
                    if line.strip():
                        events.append(json.loads(line))
                if until and events and until(events):
                    break
        except (ValueError, ConnectionError, OSError):
            clean = False
        f.close()
        sock.close()
        return status, events, clean

    def wait_pod(self, ns, name, pred, timeout=10):
        end = time.time() + timeout
        pod = None
        while time.time() < end:
            st, pod, _ = self.req('GET', f'/api/v1/namespaces/{ns}/pods/{name}')
            if st == 200 and pred(pod):
                return pod
            time.sleep(0.05)
        return pod

    def make_namespace(self, prefix='t'):
        """A fresh namespace for a test's pods (kube-sim takes any name as it is)."""
        ns = f'{prefix}-{uuid.uuid4().hex[:8]}'
        if not self.is_sim:
            self.req('POST', '/api/v1/namespaces', {'apiVersion': 'v1', 'kind': 'Namespace',
                                                    'metadata': {'name': ns}})
            # no controller-manager beside a bare apiserver: make the default
            # ServiceAccount that pod admission insists on (409 where one exists)
            self.req('POST', f'/api/v1/namespaces/{ns}/serviceaccounts',
                     {'apiVersion': 'v1', 'kind': 'ServiceAccount', 'metadata': {'name': 'default'},
                      'automountServiceAccountToken': False})
        return ns

    def drop_namespace(self, ns):
        st, l, _ = self.req('GET', f'/api/v1/namespaces/{ns}/pods')
        for p in (l or {}).get('items', []) if st == 200 else []:
            self.req('DELETE', f'/api/v1/namespaces/{ns}/pods/{p["metadata"]["name"]}?gracePeriodSeconds=0')
        if not self.is_sim:
            self.req('DELETE', f'/api/v1/namespaces/{ns}')

    def stop(self):
        pass


class Sim(Api):
    is_sim = True
    kind = 'sim'

    def __init__(self, *args):
        self.dir = tempfile.mkdtemp(prefix='kube-sim.')
        pf = os.path.join(self.dir, 'port')
        self.log = open(os.path.join(self.dir, 'sim.log'), 'w')
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, 'kube-sim.py'), '--port', '0',
                                      '--port-file', pf] + list(args),
                                     stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(100):
            if os.path.exists(pf):
                break
            time.sleep(0.05)
        with open(pf) as f:
            self.port = int(f.read())
        self.setup(f'http://127.0.0.1:{self.port}')

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)
        self.log.close()

    def fault(self, **kw):
        return self.req('POST', '/_sim/faults', kw)[1]


class Remote(Api):
    def __init__(self, kubeconfig, context=None):
        c = load_kubeconfig(kubeconfig, context)
        self.setup(c['server'], c['ca_file'], c['insecure'], c['token'], c['cert_file'], c['key_file'])
        self.namespace = c['namespace']
        self.kind = os.environ.get('KUBE_SIM_KIND') or 'cluster'


def connect(*sim_args):
    kc = os.environ.get('KUBECONFIG')
    if kc:
        return Remote(kc.split(':')[0])
    return Sim(*sim_args)


def pod(name, cmd=('sh', '-c', 'echo hi'), labels=None, **spec):
    p = {'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'name': name, 'labels': labels or {}},
         'spec': dict({'restartPolicy': 'Never',
                       'containers': [{'name': 'main', 'image': 'busybox', 'command': list(cmd)}]}, **spec)}
    return p


class Tap:
    def __init__(self):
        self.n = 0
        self.fails = 0

    def ok(self, cond, desc, diag=None):
        self.n += 1
        print(f'{"ok" if cond else "not ok"} {self.n} - {desc}', flush=True)
        if not cond:
            self.fails += 1
            if diag is not None:
                for ln in str(diag)[:2000].splitlines():
                    print('#   ' + ln)

    def is_(self, got, want, desc):
        self.ok(got == want, desc, f'got:  {got!r}\nwant: {want!r}')

    def skip(self, desc, why):
        self.n += 1
        print(f'ok {self.n} # SKIP {desc}: {why}', flush=True)

    def done(self):
        print(f'1..{self.n}')
        return 1 if self.fails else 0
