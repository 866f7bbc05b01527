/* kube_pod: see kube_pod.h. */
#include "kube_pod.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

/* Hex of SHA-256 over n NUL-separated parts, first `digits` characters. */
static void hash_hex(const char *const *parts, size_t n, char *out, size_t digits)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    static const char zero = 0;
    if (c && EVP_DigestInit_ex(c, EVP_sha256(), NULL)) {
        for (size_t i = 0; i < n; i++) {
            const char *p = parts[i] ? parts[i] : "";
            EVP_DigestUpdate(c, p, strlen(p));
            EVP_DigestUpdate(c, &zero, 1);
        }
        EVP_DigestFinal_ex(c, md, &mdlen);
    }
    EVP_MD_CTX_free(c);
    if (mdlen < 32)
        memset(md, 0, 32);
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < digits && i < 64; i++)
        out[i] = hx[(md[i / 2] >> (i % 2 ? 0 : 4)) & 15];
    out[digits < 64 ? digits : 64] = 0;
}

static bool is_lalnum(int c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
static bool is_alnum(int c) { return is_lalnum(c) || (c >= 'A' && c <= 'Z'); }

/* Lowercase, every run of characters outside [a-z0-9] becomes one '-', no
 * leading/trailing '-', at most max characters. */
static void dns_part(const char *in, char *out, size_t max)
{
    size_t n = 0;
    bool dash = false;
    for (const unsigned char *p = (const unsigned char *)(in ? in : ""); *p && n < max; p++) {
        int c = tolower(*p < 128 ? *p : 0);
        if (is_lalnum(c)) {
            if (dash && n > 0) {
                if (n + 2 > max)
                    break;
                out[n++] = '-';
            }
            dash = false;
            out[n++] = (char)c;
        } else {
            dash = true;
        }
    }
    while (n > 0 && out[n - 1] == '-')
        n--;
    out[n] = 0;
}

void kube_pod_name(const struct kube_pod_ids *ids, char out[KUBE_NAME_MAX + 1])
{
    char tryno[24], hash[16];
    snprintf(tryno, sizeof tryno, "%d", ids->try_number);
    const char *parts[] = {ids->instance, ids->dag_id, ids->run_id, ids->task_id, tryno};
    hash_hex(parts, 5, hash, 10);
    /* "-<try>-<hash>" at the end; dag and task share what is left. */
    size_t tail = 1 + strlen(tryno) + 1 + 10;
    size_t room = KUBE_NAME_MAX - tail;     /* for "<dag>-<task>" */
    char dag[KUBE_NAME_MAX + 1], task[KUBE_NAME_MAX + 1];
    dns_part(ids->dag_id, dag, KUBE_NAME_MAX);
    dns_part(ids->task_id, task, KUBE_NAME_MAX);
    size_t ld = strlen(dag), lt = strlen(task);
    if (ld + 1 + lt > room) {
        /* Give each half its share; a short one leaves its rest to the other. */
        size_t half = (room - 1) / 2;
        if (ld <= half)
            lt = room - 1 - ld;
        else if (lt <= half)
            ld = room - 1 - lt;
        else {
            ld = half;
            lt = room - 1 - half;
        }
        dag[ld] = task[lt] = 0;
        while (ld > 0 && dag[ld - 1] == '-')
            dag[--ld] = 0;
        while (lt > 0 && task[lt - 1] == '-')
            task[--lt] = 0;
    }
    /* The lengths above keep it <= 63; tmp only spares a truncation warning. */
    char tmp[4 * (KUBE_NAME_MAX + 1)];
    if (!ld && !lt)
        snprintf(tmp, sizeof tmp, "kiln-%s-%s", tryno, hash);
    else if (!ld || !lt)
        snprintf(tmp, sizeof tmp, "%s-%s-%s", ld ? dag : task, tryno, hash);
    else
        snprintf(tmp, sizeof tmp, "%s-%s-%s-%s", dag, task, tryno, hash);
    tmp[KUBE_NAME_MAX] = 0;
    memcpy(out, tmp, strlen(tmp) + 1);
}

void kube_label_value(const char *in, char out[KUBE_LABEL_VALUE_MAX + 1])
{
    if (!in)
        in = "";
    size_t len = strlen(in), b = 0, e = len;
    while (b < e && !is_alnum((unsigned char)in[b]))
        b++;
    while (e > b && !is_alnum((unsigned char)in[e - 1]))
        e--;
    char buf[KUBE_LABEL_VALUE_MAX + 1];
    size_t n = 0;
    bool changed = b != 0 || e != len, toolong = false;
    for (size_t i = b; i < e; i++) {
        unsigned char c = (unsigned char)in[i];
        if (!(is_alnum(c) || c == '-' || c == '_' || c == '.')) {
            changed = true;
            continue;
        }
        if (n == KUBE_LABEL_VALUE_MAX) {
            toolong = true;
            break;
        }
        buf[n++] = (char)c;
    }
    buf[n] = 0;
    if (!changed && !toolong) {
        memcpy(out, buf, n + 1);
        return;
    }
    char hash[16];
    const char *parts[] = {in};
    hash_hex(parts, 1, hash, 9);
    if (n > 53)
        n = 53;
    while (n > 0 && !is_alnum((unsigned char)buf[n - 1]))
        n--;
    buf[n] = 0;
    char tmp[2 * (KUBE_LABEL_VALUE_MAX + 1)];
    if (n)
        snprintf(tmp, sizeof tmp, "%s-%s", buf, hash);
    else
        snprintf(tmp, sizeof tmp, "%s", hash);
    tmp[KUBE_LABEL_VALUE_MAX] = 0;      /* 53 + 1 + 9 at most */
    memcpy(out, tmp, strlen(tmp) + 1);
}

bool kube_valid_dns_label(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 63 || !is_lalnum((unsigned char)s[0]) || !is_lalnum((unsigned char)s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_lalnum((unsigned char)s[i]) && s[i] != '-')
            return false;
    return true;
}

bool kube_valid_dns_subdomain(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 253)
        return false;
    char buf[254];
    memcpy(buf, s, n + 1);
    char *save = NULL;
    if (buf[0] == '.' || buf[n - 1] == '.' || strstr(buf, ".."))
        return false;
    for (char *t = strtok_r(buf, ".", &save); t; t = strtok_r(NULL, ".", &save))
        if (!kube_valid_dns_label(t))
            return false;
    return true;
}

bool kube_valid_label_value(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0)
        return true;
    if (n > 63 || !is_alnum((unsigned char)s[0]) || !is_alnum((unsigned char)s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(is_alnum(c) || c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

bool kube_valid_label_key(const char *s)
{
    if (!s)
        return false;
    const char *slash = strchr(s, '/');
    const char *name = s;
    if (slash) {
        size_t pl = (size_t)(slash - s);
        if (pl == 0 || pl > 253)
            return false;
        char prefix[254];
        memcpy(prefix, s, pl);
        prefix[pl] = 0;
        if (!kube_valid_dns_subdomain(prefix))
            return false;
        name = slash + 1;
    }
    return *name && kube_valid_label_value(name);
}

bool kube_valid_quantity(const char *s)
{
    if (!s || !*s)
        return false;
    const char *p = s;
    if (*p == '+')
        p++;
    size_t digits = 0;
    while (isdigit((unsigned char)*p)) {
        p++;
        digits++;
    }
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p)) {
            p++;
            digits++;
        }
    }
    if (!digits)
        return false;
    static const char *const suffixes[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u",
                                           "m", "k", "M", "G", "T", "P", "E"};
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++)
        if (!strcmp(p, suffixes[i]))
            return true;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!isdigit((unsigned char)*p))
            return false;
        while (isdigit((unsigned char)*p))
            p++;
        return *p == 0;
    }
    return false;
}

bool kube_valid_env_name(const char *s)
{
    if (!s || !*s)
        return false;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (!(is_alnum(c) || c == '-' || c == '.' || c == '_'))
            return false;
        if (p == s && isdigit(c))
            return false;
    }
    return true;
}

/* --- building ------------------------------------------------------------ */

static void put_str(json_object *o, const char *k, const char *v)
{
    json_object_object_add(o, k, json_object_new_string(v));
}

static int add_resources(json_object *res, const char *which, const struct kube_resources *r,
                         int gpu, const char *gpu_res, struct kiln_err *err)
{
    json_object *m = json_object_new_object();
    const char *names[] = {"cpu", "memory", "ephemeral-storage"};
    const char *vals[] = {r->cpu, r->memory, r->ephemeral_storage};
    for (int i = 0; i < 3; i++) {
        if (!vals[i])
            continue;
        if (!kube_valid_quantity(vals[i])) {
            json_object_put(m);
            return kiln_err_set(err, KILN_EINVALID,
                                "kubernetes: resources.%s.%s: '%s' is not a quantity "
                                "(e.g. 500m, 2, 1.5Gi, 512Mi)", which, names[i], vals[i]);
        }
        put_str(m, names[i], vals[i]);
    }
    if (gpu > 0) {
        char b[24];
        snprintf(b, sizeof b, "%d", gpu);
        put_str(m, gpu_res, b);
    }
    if (json_object_object_length(m))
        json_object_object_add(res, which, m);
    else
        json_object_put(m);
    return 0;
}

static int kv_map(json_object *parent, const char *k, const struct kube_kv *kv, size_t n,
                  const char *what, struct kiln_err *err)
{
    if (!n)
        return 0;
    json_object *m = json_object_new_object();
    json_object_object_add(parent, k, m);
    for (size_t i = 0; i < n; i++) {
        if (!kube_valid_label_key(kv[i].key))
            return kiln_err_set(err, KILN_EINVALID, "kubernetes: %s key '%s' is not a valid label key",
                                what, kv[i].key ? kv[i].key : "");
        if (!kube_valid_label_value(kv[i].value))
            return kiln_err_set(err, KILN_EINVALID,
                                "kubernetes: %s '%s': '%s' is not a valid label value", what,
                                kv[i].key, kv[i].value ? kv[i].value : "(null)");
        put_str(m, kv[i].key, kv[i].value);
    }
    return 0;
}

static int build_volumes(const struct kube_task_spec *ks, json_object *spec, json_object *ctr,
                         struct kiln_err *err)
{
    if (!ks->n_volumes)
        return 0;
    json_object *vols = json_object_new_array(), *mounts = json_object_new_array();
    json_object_object_add(spec, "volumes", vols);
    json_object_object_add(ctr, "volumeMounts", mounts);
    for (size_t i = 0; i < ks->n_volumes; i++) {
        const struct kube_volume *v = &ks->volumes[i];
        char defname[32];
        snprintf(defname, sizeof defname, "vol-%zu", i);
        const char *name = v->name ? v->name : defname;
        if (!kube_valid_dns_label(name))
            return kiln_err_set(err, KILN_EINVALID,
                                "kubernetes: volumes[%zu]: name '%s' must be a DNS-1123 label "
                                "(<= 63 of a-z, 0-9, '-', starting and ending alphanumeric)", i, name);
        for (size_t j = 0; j < i; j++)
            if (ks->volumes[j].name && !strcmp(ks->volumes[j].name, name))
                return kiln_err_set(err, KILN_EINVALID, "kubernetes: volumes[%zu]: duplicate name '%s'",
                                    i, name);
        if (!v->mount_path || v->mount_path[0] != '/')
            return kiln_err_set(err, KILN_EINVALID,
                                "kubernetes: volumes[%zu] (%s): mount path must be absolute", i, name);
        if (v->kind != KUBE_VOL_EMPTY_DIR && (!v->source || !kube_valid_dns_subdomain(v->source)))
            return kiln_err_set(err, KILN_EINVALID,
                                "kubernetes: volumes[%zu] (%s): source '%s' is not a valid object name",
                                i, name, v->source ? v->source : "");
        if (v->size_limit && !kube_valid_quantity(v->size_limit))
            return kiln_err_set(err, KILN_EINVALID,
                                "kubernetes: volumes[%zu] (%s): size limit '%s' is not a quantity",
                                i, name, v->size_limit);
        json_object *vol = json_object_new_object(), *src = json_object_new_object();
        json_object_array_add(vols, vol);
        put_str(vol, "name", name);
        switch (v->kind) {
        case KUBE_VOL_EMPTY_DIR:
            if (v->medium)
                put_str(src, "medium", v->medium);
            if (v->size_limit)
                put_str(src, "sizeLimit", v->size_limit);
            json_object_object_add(vol, "emptyDir", src);
            break;
        case KUBE_VOL_PVC:
            put_str(src, "claimName", v->source);
            if (v->read_only)
                json_object_object_add(src, "readOnly", json_object_new_boolean(1));
            json_object_object_add(vol, "persistentVolumeClaim", src);
            break;
        case KUBE_VOL_CONFIG_MAP:
            put_str(src, "name", v->source);
            json_object_object_add(vol, "configMap", src);
            break;
        case KUBE_VOL_SECRET:
            put_str(src, "secretName", v->source);
            json_object_object_add(vol, "secret", src);
            break;
        }
        json_object *m = json_object_new_object();
        json_object_array_add(mounts, m);
        put_str(m, "name", name);
        put_str(m, "mountPath", v->mount_path);
        if (v->sub_path)
            put_str(m, "subPath", v->sub_path);
        if (v->read_only || v->kind == KUBE_VOL_CONFIG_MAP || v->kind == KUBE_VOL_SECRET)
            json_object_object_add(m, "readOnly", json_object_new_boolean(1));
    }
    return 0;
}

static bool in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(s, *list))
            return true;
    return false;
}

static int build_tolerations(const struct kube_task_spec *ks, const char *gpu_res, json_object *spec,
                             struct kiln_err *err)
{
    static const char *const ops[] = {"Exists", "Equal", NULL};
    static const char *const effects[] = {"NoSchedule", "PreferNoSchedule", "NoExecute", NULL};
    bool add_gpu = ks->gpu > 0 && ks->gpu_toleration;
    if (!ks->n_tolerations && !add_gpu)
        return 0;
    json_object *arr = json_object_new_array();
    json_object_object_add(spec, "tolerations", arr);
    for (size_t i = 0; i < ks->n_tolerations; i++) {
        const struct kube_toleration *t = &ks->tolerations[i];
        const char *op = t->op ? t->op : "Equal";
        if (!in_list(op, ops))
            return kiln_err_set(err, KILN_EINVALID,
                                "kubernetes: tolerations[%zu]: operator '%s' (want Exists or Equal)", i, op);
        if (t->effect && !in_list(t->effect, effects))
            return kiln_err_set(err, KILN_EINVALID,
                                "kubernetes: tolerations[%zu]: effect '%s' (want NoSchedule, "
                                "PreferNoSchedule or NoExecute)", i, t->effect);
        if (t->key && *t->key && !kube_valid_label_key(t->key))
            return kiln_err_set(err, KILN_EINVALID, "kubernetes: tolerations[%zu]: bad key '%s'", i, t->key);
        if (!strcmp(op, "Exists") && t->value && *t->value)
            return kiln_err_set(err, KILN_EINVALID,
                                "kubernetes: tolerations[%zu]: a value is not allowed with Exists", i);
        if (!strcmp(op, "Equal") && (!t->key || !*t->key))
            return kiln_err_set(err, KILN_EINVALID,
                                "kubernetes: tolerations[%zu]: Equal needs a key", i);
        if (t->toleration_seconds && (!t->effect || strcmp(t->effect, "NoExecute")))
            return kiln_err_set(err, KILN_EINVALID,
                                "kubernetes: tolerations[%zu]: seconds need effect NoExecute", i);
        json_object *o = json_object_new_object();
        json_object_array_add(arr, o);
        if (t->key && *t->key)
            put_str(o, "key", t->key);
        put_str(o, "operator", op);
        if (t->value && *t->value)
            put_str(o, "value", t->value);
        if (t->effect)
            put_str(o, "effect", t->effect);
        if (t->toleration_seconds)
            json_object_object_add(o, "tolerationSeconds", json_object_new_int64(t->toleration_seconds));
        if (add_gpu && t->key && !strcmp(t->key, gpu_res))
            add_gpu = false;
    }
    if (add_gpu) {
        json_object *o = json_object_new_object();
        put_str(o, "key", gpu_res);
        put_str(o, "operator", "Exists");
        put_str(o, "effect", "NoSchedule");
        json_object_array_add(arr, o);
    }
    return 0;
}

static int build_container(const struct kube_task_spec *ks, const char *gpu_res, json_object *ctr,
                           struct kiln_err *err)
{
    static const char *const pull[] = {"Always", "IfNotPresent", "Never", NULL};
    put_str(ctr, "name", KUBE_CONTAINER_NAME);
    put_str(ctr, "image", ks->image);
    if (ks->image_pull_policy) {
        if (!in_list(ks->image_pull_policy, pull))
            return kiln_err_set(err, KILN_EINVALID,
                                "kubernetes: image_pull_policy '%s' (want Always, IfNotPresent or Never)",
                                ks->image_pull_policy);
        put_str(ctr, "imagePullPolicy", ks->image_pull_policy);
    }
    json_object *cmd = json_object_new_array();
    json_object_object_add(ctr, "command", cmd);
    for (char *const *a = ks->command; *a; a++)
        json_object_array_add(cmd, json_object_new_string(*a));
    if (ks->n_env) {
        json_object *env = json_object_new_array();
        json_object_object_add(ctr, "env", env);
        for (size_t i = 0; i < ks->n_env; i++) {
            if (!kube_valid_env_name(ks->env[i].key))
                return kiln_err_set(err, KILN_EINVALID,
                                    "kubernetes: env name '%s' must consist of letters, digits, "
                                    "'_', '-' or '.', and not start with a digit",
                                    ks->env[i].key ? ks->env[i].key : "");
            for (size_t j = 0; j < i; j++)
                if (!strcmp(ks->env[j].key, ks->env[i].key))
                    return kiln_err_set(err, KILN_EINVALID, "kubernetes: env '%s' is set twice",
                                        ks->env[i].key);
            json_object *e = json_object_new_object();
            put_str(e, "name", ks->env[i].key);
            put_str(e, "value", ks->env[i].value ? ks->env[i].value : "");
            json_object_array_add(env, e);
        }
    }
    if (ks->working_dir) {
        if (ks->working_dir[0] != '/')
            return kiln_err_set(err, KILN_EINVALID, "kubernetes: working_dir '%s' must be absolute",
                                ks->working_dir);
        put_str(ctr, "workingDir", ks->working_dir);
    }
    json_object *res = json_object_new_object();
    json_object_object_add(ctr, "resources", res);
    int rc;
    if ((rc = add_resources(res, "requests", &ks->requests, 0, gpu_res, err)) < 0 ||
        (rc = add_resources(res, "limits", &ks->limits, ks->gpu, gpu_res, err)) < 0)
        return rc;
    return 0;
}

/* --- the pod template ----------------------------------------------------- */

static json_object *deep_copy(json_object *o)
{
    json_object *c = NULL;
    if (o && json_object_deep_copy(o, &c, NULL) < 0)
        return NULL;
    return c;
}

static void merge_into(json_object *dst, json_object *src);

/* dst[key] and src[key] are lists of maps identified by field `id`: entries
 * of src replace those of dst with the same id, the others are appended. */
static void merge_keyed_list(json_object *dst, const char *key, json_object *src, const char *id)
{
    json_object *d = json_object_object_get(dst, key);
    if (!json_object_is_type(d, json_type_array)) {
        json_object_object_add(dst, key, deep_copy(src));
        return;
    }
    size_t n = json_object_array_length(src);
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(src, i);
        const char *eid = json_object_get_string(json_object_object_get(e, id));
        size_t m = json_object_array_length(d), j = 0;
        for (; eid && j < m; j++) {
            const char *did = json_object_get_string(
                json_object_object_get(json_object_array_get_idx(d, j), id));
            if (did && !strcmp(did, eid))
                break;
        }
        if (eid && j < m)
            json_object_array_put_idx(d, j, deep_copy(e));
        else
            json_object_array_add(d, deep_copy(e));
    }
}

/* Which lists of the pod and the container are unions, and by what. */
static const char *list_id(const char *key)
{
    static const char *const ids[][2] = {
        {"volumes", "name"}, {"imagePullSecrets", "name"}, {"env", "name"},
        {"volumeMounts", "mountPath"}, {"tolerations", NULL},
    };
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++)
        if (!strcmp(key, ids[i][0]))
            return ids[i][1] ? ids[i][1] : "";
    return NULL;
}

static void merge_containers(json_object *dst_spec, json_object *gen)
{
    json_object *tc = json_object_object_get(dst_spec, "containers");
    if (!json_object_is_type(tc, json_type_array) || !json_object_array_length(tc)) {
        json_object_object_add(dst_spec, "containers", deep_copy(gen));
        return;
    }
    size_t n = json_object_array_length(tc), main_i = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = json_object_get_string(
            json_object_object_get(json_object_array_get_idx(tc, i), "name"));
        if (name && !strcmp(name, KUBE_CONTAINER_NAME))
            main_i = i;
    }
    json_object *main_c = deep_copy(json_object_array_get_idx(tc, main_i));
    /* kiln's command is the whole argv: template args would be appended. */
    json_object_object_del(main_c, "args");
    merge_into(main_c, json_object_array_get_idx(gen, 0));
    /* The task's container first: tools (and kube-sim) look at containers[0]. */
    json_object *out = json_object_new_array();
    json_object_array_add(out, main_c);
    for (size_t i = 0; i < n; i++)
        if (i != main_i)
            json_object_array_add(out, json_object_get(json_object_array_get_idx(tc, i)));
    json_object_object_add(dst_spec, "containers", out);
}

/* Lays src (kiln's pod, or a part of it) over dst (the template's copy). */
static void merge_into(json_object *dst, json_object *src)
{
    json_object_object_foreach(src, k, v) {
        json_object *d = json_object_object_get(dst, k);
        const char *id;
        /* Only the pod's spec has a "containers" list. */
        if (!strcmp(k, "containers") && json_object_is_type(v, json_type_array)) {
            merge_containers(dst, v);
        } else if (json_object_is_type(v, json_type_object) &&
                   json_object_is_type(d, json_type_object)) {
            merge_into(d, v);
        } else if (json_object_is_type(v, json_type_array) &&
                   json_object_is_type(d, json_type_array) && (id = list_id(k)) != NULL) {
            if (*id) {
                merge_keyed_list(dst, k, v, id);
            } else {
                size_t n = json_object_array_length(v);
                for (size_t i = 0; i < n; i++)
                    json_object_array_add(d, deep_copy(json_object_array_get_idx(v, i)));
            }
        } else {
            json_object_object_add(dst, k, deep_copy(v));
        }
    }
}

static int check_affinity(json_object *a, struct kiln_err *err)
{
    static const char *const keys[] = {"nodeAffinity", "podAffinity", "podAntiAffinity", NULL};
    if (!json_object_is_type(a, json_type_object))
        return kiln_err_set(err, KILN_EINVALID, "kubernetes: affinity must be a map");
    json_object_object_foreach(a, k, v) {
        if (!in_list(k, keys))
            return kiln_err_set(err, KILN_EINVALID,
                                "kubernetes: affinity: unknown key '%s' (want nodeAffinity, "
                                "podAffinity or podAntiAffinity)", k);
        if (!json_object_is_type(v, json_type_object))
            return kiln_err_set(err, KILN_EINVALID, "kubernetes: affinity.%s must be a map", k);
    }
    return 0;
}

int kube_pod_build(const struct kube_task_spec *ks, const struct kube_pod_ids *ids,
                   json_object **out, struct kiln_err *err)
{
    *out = NULL;
    if (!ks->image || !*ks->image)
        return kiln_err_set(err, KILN_EINVALID, "kubernetes: an image is required");
    if (!ks->command || !ks->command[0])
        return kiln_err_set(err, KILN_EINVALID, "kubernetes: a command is required");
    if (!ids->dag_id || !ids->run_id || !ids->task_id || !ids->instance)
        return kiln_err_set(err, KILN_EINVALID, "kubernetes: dag, run, task and instance ids are required");
    if (ks->gpu < 0)
        return kiln_err_set(err, KILN_EINVALID, "kubernetes: gpu must be >= 0, got %d", ks->gpu);
    const char *ns = ks->namespace_ ? ks->namespace_ : "default";
    if (!kube_valid_dns_label(ns))
        return kiln_err_set(err, KILN_EINVALID, "kubernetes: namespace '%s' is not a DNS-1123 label", ns);
    const char *gpu_res = ks->gpu_resource ? ks->gpu_resource : KUBE_DEFAULT_GPU_RESOURCE;
    if (!kube_valid_label_key(gpu_res) || !strchr(gpu_res, '/'))
        return kiln_err_set(err, KILN_EINVALID,
                            "kubernetes: gpu resource '%s' must be a qualified name like nvidia.com/gpu",
                            gpu_res);
    if (ks->service_account && !kube_valid_dns_subdomain(ks->service_account))
        return kiln_err_set(err, KILN_EINVALID,
                            "kubernetes: service account '%s' is not a valid name", ks->service_account);
    if (ks->runtime_class && !kube_valid_dns_subdomain(ks->runtime_class))
        return kiln_err_set(err, KILN_EINVALID,
                            "kubernetes: runtime class '%s' is not a valid name", ks->runtime_class);
    int rc;
    if (ks->affinity && (rc = check_affinity(ks->affinity, err)) < 0)
        return rc;
    if (ks->pod_template && !json_object_is_type(ks->pod_template, json_type_object))
        return kiln_err_set(err, KILN_EINVALID, "kubernetes: the pod template must be a map");

    json_object *pod = json_object_new_object();
    put_str(pod, "apiVersion", "v1");
    put_str(pod, "kind", "Pod");
    json_object *meta = json_object_new_object();
    json_object_object_add(pod, "metadata", meta);
    char name[KUBE_NAME_MAX + 1];
    kube_pod_name(ids, name);
    put_str(meta, "name", name);
    put_str(meta, "namespace", ns);

    char tryno[24], tryid[24], v[KUBE_LABEL_VALUE_MAX + 1];
    snprintf(tryno, sizeof tryno, "%d", ids->try_number);
    snprintf(tryid, sizeof tryid, "%" PRId64, ids->try_id);
    json_object *labels = json_object_new_object();
    json_object_object_add(meta, "labels", labels);
    put_str(labels, "app.kubernetes.io/managed-by", "kiln");
    const char *lk[] = {"kiln.io/instance", "kiln.io/dag", "kiln.io/run", "kiln.io/task", "kiln.io/try"};
    const char *lv[] = {ids->instance, ids->dag_id, ids->run_id, ids->task_id, tryno};
    for (int i = 0; i < 5; i++) {
        kube_label_value(lv[i], v);
        put_str(labels, lk[i], v);
    }
    json_object *ann = json_object_new_object();
    json_object_object_add(meta, "annotations", ann);
    put_str(ann, "kiln.io/instance", ids->instance);
    put_str(ann, "kiln.io/dag-id", ids->dag_id);
    put_str(ann, "kiln.io/run-id", ids->run_id);
    put_str(ann, "kiln.io/task-id", ids->task_id);
    put_str(ann, "kiln.io/try-number", tryno);
    put_str(ann, "kiln.io/try-id", tryid);

    json_object *spec = json_object_new_object();
    json_object_object_add(pod, "spec", spec);
    put_str(spec, "restartPolicy", "Never");
    if (ks->timeout_s > 0)
        json_object_object_add(spec, "activeDeadlineSeconds", json_object_new_int64(ks->timeout_s));
    if (ks->termination_grace_s > 0)
        json_object_object_add(spec, "terminationGracePeriodSeconds",
                               json_object_new_int64(ks->termination_grace_s));
    if (ks->service_account)
        put_str(spec, "serviceAccountName", ks->service_account);
    if (ks->runtime_class)
        put_str(spec, "runtimeClassName", ks->runtime_class);
    if (ks->affinity)
        json_object_object_add(spec, "affinity", deep_copy(ks->affinity));
    json_object *ctrs = json_object_new_array(), *ctr = json_object_new_object();
    json_object_object_add(spec, "containers", ctrs);
    json_object_array_add(ctrs, ctr);

    if ((rc = build_container(ks, gpu_res, ctr, err)) < 0 ||
        (rc = kv_map(spec, "nodeSelector", ks->node_selector, ks->n_node_selector, "node_selector",
                     err)) < 0 ||
        (rc = build_tolerations(ks, gpu_res, spec, err)) < 0 ||
        (rc = build_volumes(ks, spec, ctr, err)) < 0) {
        json_object_put(pod);
        return rc;
    }
    if (ks->image_pull_secrets && ks->image_pull_secrets[0]) {
        json_object *arr = json_object_new_array();
        json_object_object_add(spec, "imagePullSecrets", arr);
        for (const char *const *s = ks->image_pull_secrets; *s; s++) {
            if (!kube_valid_dns_subdomain(*s)) {
                json_object_put(pod);
                return kiln_err_set(err, KILN_EINVALID,
                                    "kubernetes: image pull secret '%s' is not a valid name", *s);
            }
            json_object *o = json_object_new_object();
            put_str(o, "name", *s);
            json_object_array_add(arr, o);
        }
    }
    if (ks->pod_template) {
        json_object *merged = deep_copy(ks->pod_template);
        merge_into(merged, pod);
        json_object_put(pod);
        /* Key order as in a pod kiln writes itself: apiVersion, kind first. */
        pod = json_object_new_object();
        put_str(pod, "apiVersion", "v1");
        put_str(pod, "kind", "Pod");
        json_object_object_foreach(merged, mk, mv)
            if (strcmp(mk, "apiVersion") && strcmp(mk, "kind"))
                json_object_object_add(pod, mk, json_object_get(mv));
        json_object_put(merged);
    }
    *out = pod;
    return 0;
}
