"""Test-side helpers for kube-sim: start/stop it, make requests, read watches (stdlib only)."""
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


class Sim:
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

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)
        self.log.close()

    def req(self, method, path, body=None, ctype='application/json', timeout=10):
        c = http.client.HTTPConnection('127.0.0.1', self.port, timeout=timeout)
        data = json.dumps(body) if isinstance(body, (dict, list)) else body
        hdrs = {'Content-Type': ctype} if data is not None else {}
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
        c = http.client.HTTPConnection('127.0.0.1', self.port, timeout=timeout)
        c.request('GET', path)
        r = c.getresponse()
        raw = r.read()
        c.close()
        return r.status, raw.decode()

    def watch(self, path, until=None, timeout=10):
        """Reads events until until(events) is true, the stream ends or timeout.
        Returns (http status, events, clean) where clean means the stream ended
        with the last chunk (a server-side close, not a dropped connection).
        Reads the socket itself: http.client hides a missing last chunk."""
        sock = socket.create_connection(('127.0.0.1', self.port), timeout=timeout)
        sock.sendall(f'GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'.encode())
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

    def fault(self, **kw):
        return self.req('POST', '/_sim/faults', kw)[1]

    def wait_pod(self, ns, name, pred, timeout=10):
        end = time.time() + timeout
        pod = None
        while time.time() < end:
            st, pod, _ = self.req('GET', f'/api/v1/namespaces/{ns}/pods/{name}')
            if st == 200 and pred(pod):
                return pod
            time.sleep(0.05)
        return pod


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

    def done(self):
        print(f'1..{self.n}')
        return 1 if self.fails else 0
