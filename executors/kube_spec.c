/* kube_spec: see kube_spec.h. */
#include "kube_spec.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "dag.h"
#include "load_yaml.h"
#include "util.h"

#define TEMPLATE_MAX_BYTES (1 << 20)
#define TEMPLATE_MAX_NODES 100000
#define PATH_MAX_LEN 512

/* The spec and everything it points to; ks comes first so that
 * kube_spec_free can take the struct kube_task_spec pointer back. */
struct spec_store {
    struct kube_task_spec ks;
    char **strs;                /* every string the spec points to */
    size_t n_strs, cap_strs;
    struct kube_kv *sel;
    struct kube_toleration *tols;
    struct kube_volume *vols;
    const char **secrets;
};

struct pctx {
    struct spec_store *st;
    const char *dag_dir;
    char *where;
    size_t where_n;
    struct kiln_err *err;
};

static const char *own(struct pctx *p, const char *s)
{
    struct spec_store *st = p->st;
    if (st->n_strs == st->cap_strs) {
        st->cap_strs = st->cap_strs ? 2 * st->cap_strs : 16;
        st->strs = xrealloc(st->strs, st->cap_strs * sizeof *st->strs);
    }
    return st->strs[st->n_strs++] = xstrdup(s);
}

static int fail(struct pctx *p, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct pctx *p, const char *path, const char *fmt, ...)
{
    if (p->where && p->where_n)
        snprintf(p->where, p->where_n, "%s", path);
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return kiln_err_set(p->err, KILN_EINVALID, "%s", msg);
}

/* "parent.key" or "key" at the top. */
static void child(char *out, const char *parent, const char *key)
{
    /* Built by hand: snprintf into a buffer of the same size warns. */
    size_t n = 0;
    for (const char *s = parent; *s && n < PATH_MAX_LEN - 1; s++)
        out[n++] = *s;
    if (*parent && n < PATH_MAX_LEN - 1)
        out[n++] = '.';
    for (const char *s = key; *s && n < PATH_MAX_LEN - 1; s++)
        out[n++] = *s;
    out[n] = 0;
}

static void item(char *out, const char *parent, size_t i)
{
    char idx[32];
    snprintf(idx, sizeof idx, "[%zu]", i);
    size_t n = strlen(parent), m = strlen(idx);
    if (n + m >= PATH_MAX_LEN)
        n = PATH_MAX_LEN - 1 - m;
    memcpy(out, parent, n);
    memcpy(out + n, idx, m + 1);
}

/* JSON null arrives as a NULL pointer from json-c. */
static bool absent(json_object *o)
{
    return o == NULL || json_object_is_type(o, json_type_null);
}

/* What a value is, for "got ..." in messages. */
static const char *describe(json_object *o, char *buf, size_t n)
{
    switch (json_object_get_type(o)) {
    case json_type_null: return "nothing";
    case json_type_object: return "a map";
    case json_type_array: return "a list";
    case json_type_boolean: return json_object_get_boolean(o) ? "true" : "false";
    case json_type_string: {
        const char *s = json_object_get_string(o);
        if (strlen(s) > 60)
            snprintf(buf, n, "'%.57s...'", s);
        else
            snprintf(buf, n, "'%s'", s);
        return buf;
    }
    default:
        snprintf(buf, n, "%s", json_object_get_string(o));
        return buf;
    }
}

/* An empty map where a list is wanted (and the reverse) is fine: a Lua {}
 * is both. */
static bool empty_container(json_object *o)
{
    return (json_object_is_type(o, json_type_object) && json_object_object_length(o) == 0) ||
           (json_object_is_type(o, json_type_array) && json_object_array_length(o) == 0);
}

static int want_map(struct pctx *p, const char *path, json_object *o, const char *what)
{
    char buf[80];
    if (json_object_is_type(o, json_type_object) || empty_container(o))
        return 0;
    return fail(p, path, "must be %s, got %s", what, describe(o, buf, sizeof buf));
}

static int want_list(struct pctx *p, const char *path, json_object *o, const char *what)
{
    char buf[80];
    if (json_object_is_type(o, json_type_array) || empty_container(o))
        return 0;
    return fail(p, path, "must be %s, got %s", what, describe(o, buf, sizeof buf));
}

static size_t list_len(json_object *o)
{
    return json_object_is_type(o, json_type_array) ? json_object_array_length(o) : 0;
}

/* A non-empty string without NUL bytes (json-c strings may hold them). */
static int get_str(struct pctx *p, const char *path, json_object *o, const char **out)
{
    char buf[80];
    if (!json_object_is_type(o, json_type_string) || json_object_get_string_len(o) == 0)
        return fail(p, path, "must be a non-empty string, got %s",
                    describe(o, buf, sizeof buf));
    const char *s = json_object_get_string(o);
    if (strlen(s) != (size_t)json_object_get_string_len(o))
        return fail(p, path, "must not contain a NUL character");
    *out = own(p, s);
    return 0;
}

static int get_int(struct pctx *p, const char *path, json_object *o, int64_t min, int64_t max,
                   const char *kind, int64_t *out)
{
    char buf[80];
    if (!json_object_is_type(o, json_type_int))
        return fail(p, path, "must be %s, got %s", kind, describe(o, buf, sizeof buf));
    errno = 0;
    int64_t v = json_object_get_int64(o);
    if (errno || v < min || v > max)
        return fail(p, path, "must be %s, got %s", kind, describe(o, buf, sizeof buf));
    *out = v;
    return 0;
}

static int get_bool(struct pctx *p, const char *path, json_object *o, bool *out)
{
    char buf[80];
    if (!json_object_is_type(o, json_type_boolean))
        return fail(p, path, "must be true or false, got %s", describe(o, buf, sizeof buf));
    *out = json_object_get_boolean(o);
    return 0;
}

static int one_of(struct pctx *p, const char *path, json_object *o, const char *const *choices,
                  size_t n, const char **out)
{
    const char *s;
    int rc = get_str(p, path, o, &s);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(s, choices[i])) {
            *out = s;
            return 0;
        }
    struct sbuf b;
    sbuf_init(&b);
    sbuf_printf(&b, "unknown value '%s'", s);
    dag_hint(&b, s, choices, n, "values");
    rc = fail(p, path, "%s", b.data);
    sbuf_free(&b);
    return rc;
}

/* Every key of map o must be one of keys[]; the first unknown one (in the
 * order written) is reported with a hint. */
static int check_keys(struct pctx *p, const char *path, json_object *o, const char *const *keys,
                      size_t n)
{
    if (!json_object_is_type(o, json_type_object))
        return 0;
    json_object_object_foreach(o, k, v) {
        (void)v;
        size_t i = 0;
        while (i < n && strcmp(k, keys[i]))
            i++;
        if (i < n)
            continue;
        char cp[PATH_MAX_LEN];
        child(cp, path, k);
        struct sbuf b;
        sbuf_init(&b);
        sbuf_printf(&b, "unknown key '%s'", k);
        dag_hint(&b, k, keys, n, "keys");
        int rc = fail(p, cp, "%s", b.data);
        sbuf_free(&b);
        return rc;
    }
    return 0;
}

/* --- quantities ------------------------------------------------------------ */

/* The value of a quantity kube_valid_quantity accepted, for comparing
 * requests with limits. */
static long double quantity_value(const char *s)
{
    char *end;
    long double v = strtold(s, &end);
    static const struct {
        const char *suf;
        long double mul;
    } sufs[] = {
        {"Ki", 1024.0L}, {"Mi", 1048576.0L}, {"Gi", 1073741824.0L},
        {"Ti", 1099511627776.0L}, {"Pi", 1125899906842624.0L}, {"Ei", 1152921504606846976.0L},
        {"n", 1e-9L}, {"u", 1e-6L}, {"m", 1e-3L}, {"k", 1e3L}, {"M", 1e6L}, {"G", 1e9L},
        {"T", 1e12L}, {"P", 1e15L}, {"E", 1e18L},
    };
    /* strtold took any exponent ("1e3") already; what is left is a suffix. */
    for (size_t i = 0; i < sizeof sufs / sizeof *sufs; i++)
        if (!strcmp(end, sufs[i].suf))
            return v * sufs[i].mul;
    return v;
}

/* A quantity: a string, or a number written without quotes (2, 0.5). */
static int get_quantity(struct pctx *p, const char *path, json_object *o, const char **out)
{
    char buf[80];
    enum json_type t = json_object_get_type(o);
    if (t != json_type_string && t != json_type_int && t != json_type_double)
        return fail(p, path, "must be a quantity like 500m, 2, 1.5Gi or 512Mi, got %s",
                    describe(o, buf, sizeof buf));
    const char *s = json_object_get_string(o);
    if (!kube_valid_quantity(s))
        return fail(p, path, "invalid quantity '%s' (expected a number with an optional "
                    "suffix, like 500m, 2, 1.5Gi or 512Mi)", s);
    *out = own(p, s);
    return 0;
}

static int parse_resource_map(struct pctx *p, const char *path, json_object *o,
                              struct kube_resources *r)
{
    static const char *const keys[] = {"cpu", "memory", "ephemeral_storage", "ephemeral-storage"};
    int rc;
    if ((rc = want_map(p, path, o, "a map like {cpu: 500m, memory: 1Gi}")) ||
        (rc = check_keys(p, path, o, keys, 4)))
        return rc;
    if (!json_object_is_type(o, json_type_object))
        return 0;
    json_object *es1 = json_object_object_get(o, "ephemeral_storage");
    json_object *es2 = json_object_object_get(o, "ephemeral-storage");
    if (!absent(es1) && !absent(es2)) {
        char cp[PATH_MAX_LEN];
        child(cp, path, "ephemeral-storage");
        return fail(p, cp, "give either ephemeral_storage or ephemeral-storage, not both");
    }
    const char **dst[] = {&r->cpu, &r->memory, &r->ephemeral_storage, &r->ephemeral_storage};
    for (int i = 0; i < 4; i++) {
        json_object *v = json_object_object_get(o, keys[i]);
        if (absent(v))
            continue;
        char cp[PATH_MAX_LEN];
        child(cp, path, keys[i]);
        if ((rc = get_quantity(p, cp, v, dst[i])))
            return rc;
    }
    return 0;
}

static int parse_resources(struct pctx *p, json_object *o)
{
    static const char *const keys[] = {"requests", "limits"};
    int rc;
    if ((rc = want_map(p, "resources", o, "a map with requests and limits")) ||
        (rc = check_keys(p, "resources", o, keys, 2)))
        return rc;
    struct kube_task_spec *ks = &p->st->ks;
    json_object *req = NULL, *lim = NULL;
    if (json_object_is_type(o, json_type_object)) {
        req = json_object_object_get(o, "requests");
        lim = json_object_object_get(o, "limits");
    }
    if (!absent(req) && (rc = parse_resource_map(p, "resources.requests", req, &ks->requests)))
        return rc;
    if (!absent(lim) && (rc = parse_resource_map(p, "resources.limits", lim, &ks->limits)))
        return rc;
    /* The apiserver refuses a request above its limit; say so now. */
    const char *names[] = {"cpu", "memory", "ephemeral_storage"};
    const char *rq[] = {ks->requests.cpu, ks->requests.memory, ks->requests.ephemeral_storage};
    const char *lm[] = {ks->limits.cpu, ks->limits.memory, ks->limits.ephemeral_storage};
    for (int i = 0; i < 3; i++) {
        if (rq[i] && lm[i] && quantity_value(rq[i]) > quantity_value(lm[i])) {
            char cp[PATH_MAX_LEN];
            json_object *rv = json_object_object_get(req, names[i]);
            child(cp, "resources.requests",
                  rv || i < 2 ? names[i] : "ephemeral-storage");
            return fail(p, cp, "request %s is more than the limit %s", rq[i], lm[i]);
        }
    }
    return 0;
}

/* --- the other keys -------------------------------------------------------- */

static int parse_node_selector(struct pctx *p, json_object *o)
{
    int rc;
    if ((rc = want_map(p, "node_selector", o, "a map of node label -> value")))
        return rc;
    size_t n = json_object_is_type(o, json_type_object) ? (size_t)json_object_object_length(o) : 0;
    struct spec_store *st = p->st;
    st->sel = xcalloc(n ? n : 1, sizeof *st->sel);
    if (!n)
        return 0;
    json_object_object_foreach(o, k, v) {
        char cp[PATH_MAX_LEN], buf[80];
        /* null: a task drops a label its default block selects on */
        if (absent(v))
            continue;
        child(cp, "node_selector", k);
        if (!kube_valid_label_key(k))
            return fail(p, cp, "'%s' is not a valid label key (an optional DNS prefix and '/', "
                        "then <= 63 of letters, digits, '-', '_', '.')", k);
        enum json_type t = json_object_get_type(v);
        /* disktype: ssd, gpu: true and version: 2 all mean the text. */
        if (t != json_type_string && t != json_type_int && t != json_type_boolean &&
            t != json_type_double)
            return fail(p, cp, "must be a label value (text), got %s",
                        describe(v, buf, sizeof buf));
        const char *s = json_object_get_string(v);
        if (!kube_valid_label_value(s))
            return fail(p, cp, "'%s' is not a valid label value (<= 63 of letters, digits, "
                        "'-', '_', '.', starting and ending alphanumeric)", s);
        struct kube_kv *kv = &st->sel[st->ks.n_node_selector++];
        kv->key = own(p, k);
        kv->value = own(p, s);
    }
    st->ks.node_selector = st->sel;
    return 0;
}

static int parse_tolerations(struct pctx *p, json_object *o)
{
    static const char *const keys[] = {"key", "operator", "value", "effect", "toleration_seconds"};
    static const char *const ops[] = {"Exists", "Equal"};
    static const char *const effects[] = {"NoSchedule", "PreferNoSchedule", "NoExecute"};
    int rc;
    if ((rc = want_list(p, "tolerations", o, "a list of {key, operator, value, effect}")))
        return rc;
    size_t n = list_len(o);
    struct spec_store *st = p->st;
    st->tols = xcalloc(n ? n : 1, sizeof *st->tols);
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(o, i);
        char ip[PATH_MAX_LEN], cp[PATH_MAX_LEN], buf[80];
        item(ip, "tolerations", i);
        if (!json_object_is_type(e, json_type_object))
            return fail(p, ip, "must be a map like {key: dedicated, operator: Equal, value: ml, "
                        "effect: NoSchedule}, got %s", describe(e, buf, sizeof buf));
        if ((rc = check_keys(p, ip, e, keys, 5)))
            return rc;
        struct kube_toleration *t = &st->tols[i];
        json_object *v;
        if (!absent(v = json_object_object_get(e, "key"))) {
            child(cp, ip, "key");
            if ((rc = get_str(p, cp, v, &t->key)))
                return rc;
            if (!kube_valid_label_key(t->key))
                return fail(p, cp, "'%s' is not a valid taint key", t->key);
        }
        if (!absent(v = json_object_object_get(e, "operator"))) {
            child(cp, ip, "operator");
            if ((rc = one_of(p, cp, v, ops, 2, &t->op)))
                return rc;
        }
        if (!absent(v = json_object_object_get(e, "value"))) {
            child(cp, ip, "value");
            if ((rc = get_str(p, cp, v, &t->value)))
                return rc;
            if (t->op && !strcmp(t->op, "Exists"))
                return fail(p, cp, "a value is not allowed with operator Exists");
            if (!kube_valid_label_value(t->value))
                return fail(p, cp, "'%s' is not a valid taint value", t->value);
        }
        if (!absent(v = json_object_object_get(e, "effect"))) {
            child(cp, ip, "effect");
            if ((rc = one_of(p, cp, v, effects, 3, &t->effect)))
                return rc;
        }
        if (!absent(v = json_object_object_get(e, "toleration_seconds"))) {
            child(cp, ip, "toleration_seconds");
            if ((rc = get_int(p, cp, v, 1, INT64_MAX, "a positive number of seconds",
                              &t->toleration_seconds)))
                return rc;
            if (!t->effect || strcmp(t->effect, "NoExecute"))
                return fail(p, cp, "toleration_seconds needs effect NoExecute");
        }
        if ((!t->op || !strcmp(t->op, "Equal")) && !t->key)
            return fail(p, ip, "operator Equal needs a key (or use operator: Exists)");
    }
    st->ks.tolerations = st->tols;
    st->ks.n_tolerations = n;
    return 0;
}

static int parse_affinity(struct pctx *p, json_object *o)
{
    static const char *const keys[] = {"nodeAffinity", "podAffinity", "podAntiAffinity"};
    int rc;
    if ((rc = want_map(p, "affinity", o, "a map with nodeAffinity, podAffinity or "
                       "podAntiAffinity")) ||
        (rc = check_keys(p, "affinity", o, keys, 3)))
        return rc;
    if (!json_object_is_type(o, json_type_object) || !json_object_object_length(o))
        return 0;
    json_object_object_foreach(o, k, v) {
        char cp[PATH_MAX_LEN], buf[80];
        child(cp, "affinity", k);
        if (!json_object_is_type(v, json_type_object))
            return fail(p, cp, "must be a map (the Pod's spec.affinity.%s), got %s", k,
                        describe(v, buf, sizeof buf));
    }
    json_object *copy = NULL;
    if (json_object_deep_copy(o, &copy, NULL) < 0)
        return fail(p, "affinity", "cannot copy");
    p->st->ks.affinity = copy;
    return 0;
}

static int parse_pull_secrets(struct pctx *p, json_object *o)
{
    int rc;
    if ((rc = want_list(p, "image_pull_secrets", o, "a list of secret names")))
        return rc;
    size_t n = list_len(o);
    struct spec_store *st = p->st;
    st->secrets = xcalloc(n + 1, sizeof *st->secrets);
    for (size_t i = 0; i < n; i++) {
        char ip[PATH_MAX_LEN];
        item(ip, "image_pull_secrets", i);
        if ((rc = get_str(p, ip, json_object_array_get_idx(o, i), &st->secrets[i])))
            return rc;
        if (!kube_valid_dns_subdomain(st->secrets[i]))
            return fail(p, ip, "'%s' is not a valid secret name (lower-case DNS name)",
                        st->secrets[i]);
    }
    st->ks.image_pull_secrets = st->secrets;
    return 0;
}

/* sub_path: relative, and never climbing out of the volume. */
static bool sub_path_ok(const char *s)
{
    if (s[0] == '/')
        return false;
    const char *q = s;
    while (*q) {
        size_t len = strcspn(q, "/");
        if (len == 2 && q[0] == '.' && q[1] == '.')
            return false;
        q += len;
        if (*q == '/')
            q++;
    }
    return true;
}

static int parse_volume(struct pctx *p, size_t i, json_object *e, struct kube_volume *v)
{
    static const char *const keys[] = {"name", "mount_path", "sub_path", "read_only",
                                       "pvc", "config_map", "secret", "empty_dir"};
    static const char *const sources[] = {"pvc", "config_map", "secret", "empty_dir"};
    static const enum kube_volume_kind kinds[] = {KUBE_VOL_PVC, KUBE_VOL_CONFIG_MAP,
                                                  KUBE_VOL_SECRET, KUBE_VOL_EMPTY_DIR};
    char ip[PATH_MAX_LEN], cp[PATH_MAX_LEN], buf[80];
    item(ip, "volumes", i);
    int rc;
    if (!json_object_is_type(e, json_type_object))
        return fail(p, ip, "must be a map like {name: data, pvc: my-claim, mount_path: /data}, "
                    "got %s", describe(e, buf, sizeof buf));
    if ((rc = check_keys(p, ip, e, keys, 8)))
        return rc;
    json_object *x;
    if (!absent(x = json_object_object_get(e, "name"))) {
        child(cp, ip, "name");
        if ((rc = get_str(p, cp, x, &v->name)))
            return rc;
        if (!kube_valid_dns_label(v->name))
            return fail(p, cp, "'%s' is not a valid volume name (<= 63 of a-z, 0-9, '-', "
                        "starting and ending alphanumeric)", v->name);
    }
    child(cp, ip, "mount_path");
    if (absent(x = json_object_object_get(e, "mount_path")))
        return fail(p, ip, "needs a mount_path (an absolute path in the container)");
    if ((rc = get_str(p, cp, x, &v->mount_path)))
        return rc;
    if (v->mount_path[0] != '/')
        return fail(p, cp, "'%s' must be an absolute path", v->mount_path);
    if (!absent(x = json_object_object_get(e, "sub_path"))) {
        child(cp, ip, "sub_path");
        if ((rc = get_str(p, cp, x, &v->sub_path)))
            return rc;
        if (!sub_path_ok(v->sub_path))
            return fail(p, cp, "'%s' must be a relative path without '..'", v->sub_path);
    }
    if (!absent(x = json_object_object_get(e, "read_only"))) {
        child(cp, ip, "read_only");
        if ((rc = get_bool(p, cp, x, &v->read_only)))
            return rc;
    }
    int found = -1;
    for (int s = 0; s < 4; s++) {
        if (absent(json_object_object_get(e, sources[s])))
            continue;
        if (found >= 0) {
            child(cp, ip, sources[s]);
            return fail(p, cp, "a volume has one source: both %s and %s are given",
                        sources[found], sources[s]);
        }
        found = s;
    }
    if (found < 0)
        return fail(p, ip, "needs a source: one of pvc, config_map, secret or empty_dir");
    v->kind = kinds[found];
    child(cp, ip, sources[found]);
    x = json_object_object_get(e, sources[found]);
    if (v->kind != KUBE_VOL_EMPTY_DIR) {
        if ((rc = get_str(p, cp, x, &v->source)))
            return rc;
        if (!kube_valid_dns_subdomain(v->source))
            return fail(p, cp, "'%s' is not a valid object name (lower-case DNS name)",
                        v->source);
        return 0;
    }
    /* empty_dir: true, or {medium, size_limit}. */
    if (json_object_is_type(x, json_type_boolean) && json_object_get_boolean(x))
        return 0;
    if (!json_object_is_type(x, json_type_object) && !empty_container(x))
        return fail(p, cp, "must be true or a map like {medium: Memory, size_limit: 1Gi}, got %s",
                    describe(x, buf, sizeof buf));
    static const char *const ed_keys[] = {"medium", "size_limit"};
    if ((rc = check_keys(p, cp, x, ed_keys, 2)))
        return rc;
    json_object *m = json_object_is_type(x, json_type_object) ?
                     json_object_object_get(x, "medium") : NULL;
    json_object *sl = json_object_is_type(x, json_type_object) ?
                      json_object_object_get(x, "size_limit") : NULL;
    char mp[PATH_MAX_LEN];
    if (!absent(m)) {
        static const char *const media[] = {"Memory", "HugePages"};
        child(mp, cp, "medium");
        if ((rc = one_of(p, mp, m, media, 2, &v->medium)))
            return rc;
    }
    if (!absent(sl)) {
        child(mp, cp, "size_limit");
        if ((rc = get_quantity(p, mp, sl, &v->size_limit)))
            return rc;
    }
    return 0;
}

static int parse_volumes(struct pctx *p, json_object *o)
{
    int rc;
    if ((rc = want_list(p, "volumes", o, "a list of volumes")))
        return rc;
    size_t n = list_len(o);
    struct spec_store *st = p->st;
    st->vols = xcalloc(n ? n : 1, sizeof *st->vols);
    for (size_t i = 0; i < n; i++) {
        struct kube_volume *v = &st->vols[i];
        if ((rc = parse_volume(p, i, json_object_array_get_idx(o, i), v)))
            return rc;
        /* Unnamed volumes get "vol-<i>" in the pod: compare what the pod will hold. */
        char ni[32], nj[32], ip[PATH_MAX_LEN];
        snprintf(ni, sizeof ni, "vol-%zu", i);
        const char *name = v->name ? v->name : ni;
        for (size_t j = 0; j < i; j++) {
            snprintf(nj, sizeof nj, "vol-%zu", j);
            const char *other = st->vols[j].name ? st->vols[j].name : nj;
            item(ip, "volumes", i);
            if (!strcmp(name, other))
                return fail(p, ip, "duplicate volume name '%s' (also volumes[%zu])", name, j);
            if (!strcmp(v->mount_path, st->vols[j].mount_path))
                return fail(p, ip, "duplicate mount_path '%s' (also volumes[%zu])",
                            v->mount_path, j);
        }
    }
    st->ks.volumes = st->vols;
    st->ks.n_volumes = n;
    return 0;
}

static int parse_duration_s(struct pctx *p, const char *path, json_object *o, int64_t *out)
{
    char buf[80];
    enum json_type t = json_object_get_type(o);
    int64_t ms;
    if ((t != json_type_string && t != json_type_int) ||
        duration_parse(json_object_get_string(o), &ms) < 0)
        return fail(p, path, "must be a duration like 30s, 5m or 1h, got %s",
                    describe(o, buf, sizeof buf));
    if (ms <= 0)
        return fail(p, path, "must be at least 1s");
    *out = (ms + 999) / 1000;   /* the pod field is whole seconds */
    return 0;
}

/* --- pod_template ---------------------------------------------------------- */

static int load_template_text(struct pctx *p, const char *file, const char *buf, size_t len,
                              json_object **out)
{
    size_t fl = strlen(file);
    if (fl > 5 && !strcasecmp(file + fl - 5, ".json")) {
        enum json_tokener_error jerr;
        json_tokener *tok = json_tokener_new();
        *out = json_tokener_parse_ex(tok, buf, (int)len);
        jerr = json_tokener_get_error(tok);
        size_t off = json_tokener_get_parse_end(tok);
        if (jerr == json_tokener_success) {
            /* Only white space may follow the value. */
            for (size_t i = off; i < len; i++)
                if (!strchr(" \t\r\n", buf[i]))
                    jerr = json_tokener_error_parse_unexpected;
        }
        json_tokener_free(tok);
        if (jerr != json_tokener_success || !*out) {
            json_object_put(*out);
            *out = NULL;
            return fail(p, "pod_template", "%s: not valid JSON at byte %zu: %s", file, off,
                        json_tokener_error_desc(jerr));
        }
        return 0;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser))
        return fail(p, "pod_template", "%s: cannot initialize the YAML parser", file);
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    if (!yaml_parser_load(&parser, &doc)) {
        int rc = fail(p, "pod_template", "%s:%d:%d: YAML syntax error: %s", file,
                      (int)parser.problem_mark.line + 1, (int)parser.problem_mark.column + 1,
                      parser.problem ? parser.problem : "cannot parse the file");
        yaml_parser_delete(&parser);
        return rc;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    int rc = 0;
    if (!root) {
        rc = fail(p, "pod_template", "%s: the file is empty", file);
    } else {
        struct kiln_err e = {0};
        *out = kube_yaml_to_json(&doc, root, TEMPLATE_MAX_NODES, &e);
        if (e.code)
            rc = fail(p, "pod_template", "%s: %s", file, e.msg);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}

/* The checks that need no cluster: shape, names, labels.  The rest of the
 * template reaches the apiserver as written. */
static int check_template(struct pctx *p, const char *file, json_object *t)
{
    static const char *const top[] = {"apiVersion", "kind", "metadata", "spec"};
    static const char *const meta_keys[] = {"name", "labels", "annotations"};
    char buf[80];
    const char *pt = "pod_template";
    if (!json_object_is_type(t, json_type_object))
        return fail(p, pt, "%s: must hold a Pod (a map with metadata and spec), got %s", file,
                    describe(t, buf, sizeof buf));
    json_object_object_foreach(t, k, v) {
        size_t i = 0;
        while (i < 4 && strcmp(k, top[i]))
            i++;
        if (i == 4)
            return fail(p, pt, "%s: unknown key '%s' (a template has apiVersion, kind, metadata "
                        "and spec)", file, k);
        if ((i == 0 && (!json_object_is_type(v, json_type_string) ||
                        strcmp(json_object_get_string(v), "v1"))) ||
            (i == 1 && (!json_object_is_type(v, json_type_string) ||
                        strcmp(json_object_get_string(v), "Pod"))))
            return fail(p, pt, "%s: %s must be %s, got %s", file, k, i ? "Pod" : "v1",
                        describe(v, buf, sizeof buf));
        if (i >= 2 && !absent(v) && !json_object_is_type(v, json_type_object))
            return fail(p, pt, "%s: %s must be a map, got %s", file, k,
                        describe(v, buf, sizeof buf));
    }
    json_object *meta = json_object_object_get(t, "metadata");
    if (json_object_is_type(meta, json_type_object)) {
        if (json_object_object_get_ex(meta, "namespace", NULL))
            return fail(p, pt, "%s: metadata.namespace: set the namespace with "
                        "kubernetes.namespace", file);
        json_object_object_foreach(meta, mk, mv) {
            (void)mv;
            size_t i = 0;
            while (i < 3 && strcmp(mk, meta_keys[i]))
                i++;
            if (i == 3)
                return fail(p, pt, "%s: metadata.%s: a template's metadata may hold labels "
                            "and annotations (and a name, which kiln replaces)", file, mk);
        }
        for (int which = 0; which < 2; which++) {
            const char *mkey = which ? "annotations" : "labels";
            json_object *m = json_object_object_get(meta, mkey);
            if (absent(m))
                continue;
            if (!json_object_is_type(m, json_type_object))
                return fail(p, pt, "%s: metadata.%s must be a map", file, mkey);
            json_object_object_foreach(m, lk, lv) {
                if (!kube_valid_label_key(lk))
                    return fail(p, pt, "%s: metadata.%s: '%s' is not a valid key", file, mkey,
                                lk);
                if (!json_object_is_type(lv, json_type_string))
                    return fail(p, pt, "%s: metadata.%s.%s must be a string", file, mkey, lk);
                if (!which && !kube_valid_label_value(json_object_get_string(lv)))
                    return fail(p, pt, "%s: metadata.labels.%s: '%s' is not a valid label "
                                "value", file, lk, json_object_get_string(lv));
            }
        }
    }
    json_object *spec = json_object_object_get(t, "spec");
    if (!json_object_is_type(spec, json_type_object))
        return 0;
    json_object *rp = json_object_object_get(spec, "restartPolicy");
    if (!absent(rp) && (!json_object_is_type(rp, json_type_string) ||
                        strcmp(json_object_get_string(rp), "Never")))
        return fail(p, pt, "%s: spec.restartPolicy must be Never (kiln retries a task itself), "
                    "got %s", file, describe(rp, buf, sizeof buf));
    json_object *ctrs = json_object_object_get(spec, "containers");
    if (absent(ctrs))
        return 0;
    if (!json_object_is_type(ctrs, json_type_array))
        return fail(p, pt, "%s: spec.containers must be a list", file);
    size_t n = json_object_array_length(ctrs), main_i = 0;
    for (size_t i = 0; i < n; i++) {
        json_object *c = json_object_array_get_idx(ctrs, i), *name;
        if (!json_object_is_type(c, json_type_object) ||
            !json_object_object_get_ex(c, "name", &name) ||
            !json_object_is_type(name, json_type_string))
            return fail(p, pt, "%s: spec.containers[%zu] must be a map with a name", file, i);
        if (!strcmp(json_object_get_string(name), KUBE_CONTAINER_NAME))
            main_i = i;
    }
    for (size_t i = 0; i < n; i++) {
        json_object *c = json_object_array_get_idx(ctrs, i), *img;
        if (i != main_i && (!json_object_object_get_ex(c, "image", &img) ||
                            !json_object_is_type(img, json_type_string)))
            return fail(p, pt, "%s: spec.containers[%zu] (%s) needs an image: only the task's "
                        "container ('main', else the first) gets kiln's", file, i,
                        json_object_get_string(json_object_object_get(c, "name")));
    }
    return 0;
}

static int parse_template(struct pctx *p, json_object *o)
{
    const char *rel;
    int rc = get_str(p, "pod_template", o, &rel);
    if (rc)
        return rc;
    char path[4096];
    if (rel[0] == '/' || !p->dag_dir || !*p->dag_dir)
        snprintf(path, sizeof path, "%s", rel);
    else
        snprintf(path, sizeof path, "%s/%s", p->dag_dir, rel);
    char *buf = NULL;
    size_t len = 0;
    if ((rc = file_read_all(path, &buf, &len)) < 0)
        return fail(p, "pod_template", "cannot read '%s': %s", path, strerror(-rc));
    if (len > TEMPLATE_MAX_BYTES) {
        free(buf);
        return fail(p, "pod_template", "'%s' is larger than %d bytes", path, TEMPLATE_MAX_BYTES);
    }
    json_object *t = NULL;
    rc = load_template_text(p, path, buf, len, &t);
    free(buf);
    if (rc == 0)
        rc = check_template(p, path, t);
    if (rc) {
        json_object_put(t);
        return rc;
    }
    /* Keep what the merge uses; apiVersion and kind are kiln's. */
    json_object *keep = json_object_new_object();
    json_object *m = json_object_object_get(t, "metadata"), *s = json_object_object_get(t, "spec");
    if (m)
        json_object_object_add(keep, "metadata", json_object_get(m));
    if (s)
        json_object_object_add(keep, "spec", json_object_get(s));
    json_object_put(t);
    p->st->ks.pod_template = keep;
    return 0;
}

/* --- the block ------------------------------------------------------------- */

enum block_key {
    BK_NAMESPACE, BK_IMAGE, BK_PULL_POLICY, BK_WORKING_DIR, BK_RESOURCES, BK_GPU,
    BK_NODE_SELECTOR, BK_TOLERATIONS, BK_AFFINITY, BK_SERVICE_ACCOUNT, BK_PULL_SECRETS,
    BK_VOLUMES, BK_POD_TEMPLATE, BK_TERMINATION_GRACE, BK_RUNTIME_CLASS, BK__COUNT
};

static const char *const block_keys[BK__COUNT] = {
    [BK_NAMESPACE] = "namespace",
    [BK_IMAGE] = "image",
    [BK_PULL_POLICY] = "image_pull_policy",
    [BK_WORKING_DIR] = "working_dir",
    [BK_RESOURCES] = "resources",
    [BK_GPU] = "gpu",
    [BK_NODE_SELECTOR] = "node_selector",
    [BK_TOLERATIONS] = "tolerations",
    [BK_AFFINITY] = "affinity",
    [BK_SERVICE_ACCOUNT] = "service_account",
    [BK_PULL_SECRETS] = "image_pull_secrets",
    [BK_VOLUMES] = "volumes",
    [BK_POD_TEMPLATE] = "pod_template",
    [BK_TERMINATION_GRACE] = "termination_grace",
    [BK_RUNTIME_CLASS] = "runtime_class",
};

static int parse_key(struct pctx *p, enum block_key k, json_object *v)
{
    static const char *const pull[] = {"Always", "IfNotPresent", "Never"};
    struct kube_task_spec *ks = &p->st->ks;
    const char *path = block_keys[k];
    int rc = 0;
    int64_t n;
    switch (k) {
    case BK_NAMESPACE:
        if ((rc = get_str(p, path, v, &ks->namespace_)))
            return rc;
        if (!kube_valid_dns_label(ks->namespace_))
            return fail(p, path, "'%s' is not a valid namespace (<= 63 of a-z, 0-9, '-', "
                        "starting and ending alphanumeric)", ks->namespace_);
        return 0;
    case BK_IMAGE:
        if ((rc = get_str(p, path, v, &ks->image)))
            return rc;
        if (ks->image[strcspn(ks->image, " \t\r\n")])
            return fail(p, path, "'%s' must not contain white space", ks->image);
        return 0;
    case BK_PULL_POLICY: return one_of(p, path, v, pull, 3, &ks->image_pull_policy);
    case BK_WORKING_DIR:
        if ((rc = get_str(p, path, v, &ks->working_dir)))
            return rc;
        if (ks->working_dir[0] != '/')
            return fail(p, path, "'%s' must be an absolute path", ks->working_dir);
        return 0;
    case BK_RESOURCES: return parse_resources(p, v);
    case BK_GPU:
        if ((rc = get_int(p, path, v, 0, INT_MAX, "an integer >= 0", &n)))
            return rc;
        ks->gpu = (int)n;
        return 0;
    case BK_NODE_SELECTOR: return parse_node_selector(p, v);
    case BK_TOLERATIONS: return parse_tolerations(p, v);
    case BK_AFFINITY: return parse_affinity(p, v);
    case BK_SERVICE_ACCOUNT:
        if ((rc = get_str(p, path, v, &ks->service_account)))
            return rc;
        if (!kube_valid_dns_subdomain(ks->service_account))
            return fail(p, path, "'%s' is not a valid service account name (lower-case DNS "
                        "name)", ks->service_account);
        return 0;
    case BK_PULL_SECRETS: return parse_pull_secrets(p, v);
    case BK_VOLUMES: return parse_volumes(p, v);
    case BK_POD_TEMPLATE: return parse_template(p, v);
    case BK_TERMINATION_GRACE: return parse_duration_s(p, path, v, &ks->termination_grace_s);
    case BK_RUNTIME_CLASS:
        if ((rc = get_str(p, path, v, &ks->runtime_class)))
            return rc;
        if (!kube_valid_dns_subdomain(ks->runtime_class))
            return fail(p, path, "'%s' is not a valid RuntimeClass name (lower-case DNS name)",
                        ks->runtime_class);
        return 0;
    case BK__COUNT: break;
    }
    return 0;
}

int kube_spec_parse(json_object *block, const char *dag_dir, struct kube_task_spec **out,
                    char *where, size_t where_n, struct kiln_err *err)
{
    *out = NULL;
    if (where && where_n)
        where[0] = 0;
    struct spec_store *st = xcalloc(1, sizeof *st);
    struct pctx p = {st, dag_dir, where, where_n, err};
    int rc = 0;
    if (!absent(block) && !json_object_is_type(block, json_type_object) &&
        !empty_container(block)) {
        char buf[80];
        rc = fail(&p, "", "must be a map of pod settings like {image: busybox:1.36}, got %s",
                  describe(block, buf, sizeof buf));
    }
    if (!rc && json_object_is_type(block, json_type_object))
        rc = check_keys(&p, "", block, block_keys, BK__COUNT);
    /* In the fixed key order, so of two bad values the same one is reported
     * whatever order they were written in. */
    for (int k = 0; k < BK__COUNT && !rc && json_object_is_type(block, json_type_object); k++) {
        json_object *v = json_object_object_get(block, block_keys[k]);
        if (!absent(v))
            rc = parse_key(&p, (enum block_key)k, v);
    }
    if (rc) {
        kube_spec_free(&st->ks);
        return rc;
    }
    *out = &st->ks;
    return 0;
}

void kube_spec_free(struct kube_task_spec *ks)
{
    if (!ks)
        return;
    struct spec_store *st = (struct spec_store *)ks;
    for (size_t i = 0; i < st->n_strs; i++)
        free(st->strs[i]);
    free(st->strs);
    free(st->sel);
    free(st->tols);
    free(st->vols);
    free(st->secrets);
    json_object_put(ks->affinity);
    json_object_put(ks->pod_template);
    free(st);
}

/* --- merge ----------------------------------------------------------------- */

static json_object *copy_of(json_object *o)
{
    json_object *c = NULL;
    if (o && json_object_deep_copy(o, &c, NULL) < 0)
        return NULL;
    return c;
}

json_object *kube_spec_merge(json_object *defaults, json_object *task)
{
    if (!json_object_is_type(defaults, json_type_object) ||
        !json_object_is_type(task, json_type_object))
        return copy_of(task ? task : defaults);
    json_object *out = copy_of(defaults);
    json_object_object_foreach(task, k, v) {
        json_object *d = json_object_object_get(out, k);
        json_object *m = json_object_is_type(d, json_type_object) &&
                         json_object_is_type(v, json_type_object) ? kube_spec_merge(d, v)
                                                                  : copy_of(v);
        json_object_object_add(out, k, m);
    }
    return out;
}

/* --- the task ------------------------------------------------------------- */

int kube_spec_check_task(struct dag_task *t, const char *dag_id, struct kiln_err *err)
{
    if (!t->executor || strcmp(t->executor, "kubernetes"))
        return 0;
    if (!t->kube || !t->kube->image)
        return kiln_err_set(err, KILN_EINVALID, "executor kubernetes needs kubernetes.image "
                            "(the container image to run), in the task or the default block");
    struct kube_task_spec ks = *t->kube;
    ks.command = t->argv;
    struct kube_kv *env = xcalloc(t->n_env ? t->n_env : 1, sizeof *env);
    for (size_t i = 0; i < t->n_env; i++)
        env[i] = (struct kube_kv){t->env[i].key, t->env[i].value};
    ks.env = env;
    ks.n_env = t->n_env;
    ks.timeout_s = t->timeout_ms > 0 ? (t->timeout_ms + 999) / 1000 : 0;
    struct kube_pod_ids ids = {"load-check", dag_id ? dag_id : "dag", "load-check", t->id, 1, 1};
    json_object *pod = NULL;
    int rc = kube_pod_build(&ks, &ids, &pod, err);
    json_object_put(pod);
    free(env);
    if (rc)
        return rc;
    if (ks.gpu > 0 && (!t->pool || !strcmp(t->pool, DAG_DEFAULT_POOL))) {
        free(t->pool);
        t->pool = xstrdup(KUBE_GPU_POOL);
        t->pool_slots = ks.gpu;
    }
    return 0;
}

/* --- YAML -> JSON ---------------------------------------------------------- */

struct yconv {
    yaml_document_t *doc;
    size_t left;
    struct kiln_err *err;
};

/* [-+]?digits[.digits][e[-+]digits] (or .digits): YAML's float, without
 * inf/nan/hex, which strtod would also take. */
static bool plain_float(const char *s)
{
    const char *q = s;
    if (*q == '-' || *q == '+')
        q++;
    size_t d = 0;
    while (*q >= '0' && *q <= '9')
        q++, d++;
    if (*q == '.') {
        q++;
        while (*q >= '0' && *q <= '9')
            q++, d++;
    }
    if (!d)
        return false;
    if (*q == 'e' || *q == 'E') {
        q++;
        if (*q == '-' || *q == '+')
            q++;
        if (!(*q >= '0' && *q <= '9'))
            return false;
        while (*q >= '0' && *q <= '9')
            q++;
    }
    return *q == 0;
}

static json_object *scalar_json(const yaml_node_t *n)
{
    const char *s = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    const char *tag = (const char *)n->tag;
    bool plain = n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    if (tag && !strcmp(tag, YAML_NULL_TAG))
        return NULL;
    /* libyaml tags every untagged scalar !!str, so only quoting tells. */
    if (!plain)
        return json_object_new_string_len(s, (int)len);
    if (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL"))
        return NULL;
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    for (int i = 0; i < 3; i++) {
        if (!strcasecmp(s, yes[i]))
            return json_object_new_boolean(1);
        if (!strcasecmp(s, no[i]))
            return json_object_new_boolean(0);
    }
    const char *digits = (*s == '-' || *s == '+') ? s + 1 : s;
    if (*digits >= '0' && *digits <= '9' && digits[strspn(digits, "0123456789")] == 0) {
        errno = 0;
        char *end;
        long long v = strtoll(s, &end, 10);
        if (!errno && !*end)
            return json_object_new_int64(v);
    }
    if (plain_float(s))
        return json_object_new_double_s(strtod(s, NULL), s);
    return json_object_new_string_len(s, (int)len);
}

static json_object *yconv_node(struct yconv *c, yaml_node_t *n, int depth)
{
    if (!n)
        return NULL;
    if (c->left == 0 || depth > 64) {
        kiln_err_set(c->err, KILN_EINVALID, "%d:%d: too many or too deeply nested values",
                     (int)n->start_mark.line + 1, (int)n->start_mark.column + 1);
        return NULL;
    }
    c->left--;
    switch (n->type) {
    case YAML_SCALAR_NODE: return scalar_json(n);
    case YAML_SEQUENCE_NODE: {
        json_object *a = json_object_new_array();
        for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top;
             i++) {
            json_object *e = yconv_node(c, yaml_document_get_node(c->doc, *i), depth + 1);
            if (c->err->code) {
                json_object_put(a);
                return NULL;
            }
            json_object_array_add(a, e);
        }
        return a;
    }
    case YAML_MAPPING_NODE: {
        json_object *o = json_object_new_object();
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
            if (!k || k->type != YAML_SCALAR_NODE ||
                strlen((const char *)k->data.scalar.value) != k->data.scalar.length) {
                kiln_err_set(c->err, KILN_EINVALID, "%d:%d: keys must be plain text",
                             k ? (int)k->start_mark.line + 1 : 0,
                             k ? (int)k->start_mark.column + 1 : 0);
                json_object_put(o);
                return NULL;
            }
            if (json_object_object_get_ex(o, (const char *)k->data.scalar.value, NULL)) {
                kiln_err_set(c->err, KILN_EINVALID, "%d:%d: duplicate key '%s'",
                             (int)k->start_mark.line + 1, (int)k->start_mark.column + 1,
                             (const char *)k->data.scalar.value);
                json_object_put(o);
                return NULL;
            }
            json_object *v = yconv_node(c, yaml_document_get_node(c->doc, p->value), depth + 1);
            if (c->err->code) {
                json_object_put(o);
                return NULL;
            }
            json_object_object_add(o, (const char *)k->data.scalar.value, v);
        }
        return o;
    }
    default: return NULL;
    }
}

json_object *kube_yaml_to_json(struct yaml_document_s *doc, struct yaml_node_s *node,
                               size_t max_nodes, struct kiln_err *err)
{
    struct kiln_err local = {0};
    struct yconv c = {doc, max_nodes, &local};
    json_object *o = yconv_node(&c, node, 0);
    if (local.code) {
        json_object_put(o);
        kiln_err_set(err, local.code, "%s", local.msg);
        return NULL;
    }
    /* A null node converts to NULL too: give the caller an explicit null. */
    return o;
}
