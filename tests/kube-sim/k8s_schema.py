#!/usr/bin/env python3
"""k8s_schema: checks JSON objects against Kubernetes' OpenAPI v2 (swagger) schema.

  k8s_schema.py SWAGGER.json DEFINITION FILE...
  e.g. k8s_schema.py kubernetes_swagger_release-1.36.json io.k8s.api.core.v1.Pod pod.json

Checks: $ref resolution, types (string/integer/number/boolean/object/array), the
formats int32/int64/int-or-string/date-time, required fields, unknown fields
(the apiserver's strict field validation), additionalProperties maps, list-map
keys (x-kubernetes-list-map-keys must be unique), and the enums the schema only
states in prose ("One of Always, OnFailure, Never") for the fields kiln sends.
Prints one line per problem with its JSON path; exit status 1 if any.
"""
import json
import re
import sys

# Enums the swagger file states only in descriptions.
ENUMS = {
    ('io.k8s.api.core.v1.PodSpec', 'restartPolicy'): {'Always', 'OnFailure', 'Never'},
    ('io.k8s.api.core.v1.PodSpec', 'dnsPolicy'): {'ClusterFirstWithHostNet', 'ClusterFirst', 'Default', 'None'},
    ('io.k8s.api.core.v1.PodSpec', 'preemptionPolicy'): {'Never', 'PreemptLowerPriority'},
    ('io.k8s.api.core.v1.Container', 'imagePullPolicy'): {'Always', 'Never', 'IfNotPresent'},
    ('io.k8s.api.core.v1.Container', 'terminationMessagePolicy'): {'File', 'FallbackToLogsOnError'},
    ('io.k8s.api.core.v1.Toleration', 'operator'): {'Exists', 'Equal', 'Lt', 'Gt'},
    ('io.k8s.api.core.v1.Toleration', 'effect'): {'NoSchedule', 'PreferNoSchedule', 'NoExecute'},
    ('io.k8s.api.core.v1.PodStatus', 'phase'): {'Pending', 'Running', 'Succeeded', 'Failed', 'Unknown'},
}
DATE_TIME = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$')


class Validator:
    def __init__(self, swagger):
        self.defs = swagger['definitions']
        self.errors = []

    def err(self, path, msg):
        self.errors.append(f'{path or "."}: {msg}')

    def check(self, value, schema, path, owner=None, field=None):
        if '$ref' in schema:
            name = schema['$ref'].rsplit('/', 1)[-1]
            if name not in self.defs:
                return self.err(path, f'unresolved $ref {schema["$ref"]}')
            return self.check(value, self.defs[name], path, name)
        if owner and field and (owner, field) in ENUMS and value not in ENUMS[(owner, field)]:
            self.err(path, f'{value!r} not one of {sorted(ENUMS[(owner, field)])}')
        t = schema.get('type')
        fmt = schema.get('format')
        if fmt == 'int-or-string':
            if not (isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))):
                self.err(path, f'want int or string, got {type(value).__name__}')
            return
        if t is None and 'properties' not in schema:
            return      # free-form (RawExtension, JSON)
        if t == 'string':
            if not isinstance(value, str):
                return self.err(path, f'want string, got {type(value).__name__} {value!r}')
            if fmt == 'date-time' and not DATE_TIME.match(value):
                self.err(path, f'not an RFC 3339 date-time: {value!r}')
            if fmt == 'byte' and not re.match(r'^[A-Za-z0-9+/]*={0,2}$', value):
                self.err(path, 'not base64')
        elif t == 'integer':
            if not isinstance(value, int) or isinstance(value, bool):
                return self.err(path, f'want integer, got {type(value).__name__} {value!r}')
            if fmt == 'int32' and not -2**31 <= value < 2**31:
                self.err(path, f'{value} out of int32 range')
        elif t == 'number':
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                self.err(path, f'want number, got {type(value).__name__}')
        elif t == 'boolean':
            if not isinstance(value, bool):
                self.err(path, f'want boolean, got {type(value).__name__} {value!r}')
        elif t == 'array':
            if not isinstance(value, list):
                return self.err(path, f'want array, got {type(value).__name__}')
            keys = schema.get('x-kubernetes-list-map-keys')
            seen = set()
            for i, item in enumerate(value):
                self.check(item, schema.get('items', {}), f'{path}[{i}]')
                if keys and isinstance(item, dict):
                    k = tuple(item.get(x) for x in keys)
                    if k in seen:
                        self.err(f'{path}[{i}]', f'duplicate list-map key {dict(zip(keys, k))}')
                    seen.add(k)
        elif t == 'object' or 'properties' in schema:
            if not isinstance(value, dict):
                return self.err(path, f'want object, got {type(value).__name__}')
            props = schema.get('properties')
            addl = schema.get('additionalProperties')
            for r in schema.get('required', []):
                if r not in value:
                    self.err(f'{path}.{r}', 'required field missing')
            for k, v in value.items():
                sub = f'{path}.{k}' if not addl else f'{path}[{k}]'
                if props is not None and k in props:
                    self.check(v, props[k], sub, owner, k)
                elif isinstance(addl, dict):
                    self.check(v, addl, sub)
                elif props is not None:
                    self.err(sub, 'unknown field')
        else:
            self.err(path, f'unsupported schema type {t}')


def main():
    if len(sys.argv) < 4:
        sys.stderr.write(__doc__)
        return 2
    with open(sys.argv[1]) as f:
        v = Validator(json.load(f))
    root = sys.argv[2]
    if root not in v.defs:
        print(f'no definition {root}')
        return 2
    for fn in sys.argv[3:]:
        with open(fn) as f:
            obj = json.load(f)
        before = len(v.errors)
        v.check(obj, {'$ref': '#/definitions/' + root}, '')
        for e in v.errors[before:]:
            print(f'{fn}: {e}')
    return 1 if v.errors else 0


if __name__ == '__main__':
    sys.exit(main())
