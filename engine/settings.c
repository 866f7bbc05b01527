#include "settings.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "util.h"

static const char *const names[] = { "home", "dags", "bind", "port", "executor",
                                     "parallelism", "kill_grace", "log_level",
                                     "infra_retries", "infra_retry_delay", "kube_config", "kube_context",
                                     "kube_namespace", "kube_instance",
                                     "kube_pending_timeout", "kube_image_pull_grace",
                                     "kube_keep_failed", "kube_gpus",
                                     "kube_gpu_node_selector", "kube_gpu_runtime_class",
                                     "kube_create_qps" };

static int set_duration(const char *name, const char *value, int64_t *out, struct kiln_err *err)
{
    if (duration_parse(value, out) < 0)
        return kiln_err_set(err, -EINVAL, "%s must be a duration like 30s, 5m or 1h, got '%s'",
                            name, value);
    return 0;
}

static int parse_int(const char *v, int min, int max, int *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max)
        return -EINVAL;
    *out = (int)n;
    return 0;
}

static void replace(char **slot, const char *v)
{
    free(*slot);
    *slot = xstrdup(v);
}

int settings_set(struct kiln_settings *s, const char *name, const char *value,
                 struct kiln_err *err)
{
    if (strcmp(name, "home") == 0)
        replace(&s->home, value);
    else if (strcmp(name, "dags") == 0)
        replace(&s->dags, value);
    else if (strcmp(name, "bind") == 0)
        replace(&s->bind, value);
    else if (strcmp(name, "port") == 0) {
        if (parse_int(value, 0, 65535, &s->port) < 0)
            return kiln_err_set(err, -EINVAL, "port must be 0..65535, got '%s'", value);
    } else if (strcmp(name, "executor") == 0) {
        if (strcmp(value, "local") != 0 && strcmp(value, "noop") != 0)
            return kiln_err_set(err, -EINVAL, "executor must be local or noop, got '%s'", value);
        replace(&s->executor, value);
    } else if (strcmp(name, "parallelism") == 0) {
        if (parse_int(value, 1, 100000, &s->parallelism) < 0)
            return kiln_err_set(err, -EINVAL, "parallelism must be a positive integer, got '%s'",
                                value);
    } else if (strcmp(name, "kill_grace") == 0) {
        if (duration_parse(value, &s->kill_grace_ms) < 0)
            return kiln_err_set(err, -EINVAL,
                                "kill_grace must be a duration like 5s or 500ms, got '%s'", value);
    } else if (strcmp(name, "infra_retries") == 0) {
        if (parse_int(value, 0, 1000, &s->infra_retries) < 0)
            return kiln_err_set(err, -EINVAL, "infra_retries must be 0..1000, got '%s'", value);
        if (s->infra_retries == 0)
            s->infra_retries = -1;      /* the scheduler's "none" */
    } else if (strcmp(name, "infra_retry_delay") == 0) {
        return set_duration(name, value, &s->infra_retry_delay_ms, err);
    } else if (strcmp(name, "kube_config") == 0) {
        replace(&s->kube_config, value);
    } else if (strcmp(name, "kube_context") == 0) {
        replace(&s->kube_context, value);
    } else if (strcmp(name, "kube_namespace") == 0) {
        replace(&s->kube_namespace, value);
    } else if (strcmp(name, "kube_instance") == 0) {
        replace(&s->kube_instance, value);
    } else if (strcmp(name, "kube_pending_timeout") == 0) {
        return set_duration(name, value, &s->kube_pending_timeout_ms, err);
    } else if (strcmp(name, "kube_image_pull_grace") == 0) {
        return set_duration(name, value, &s->kube_image_pull_grace_ms, err);
    } else if (strcmp(name, "kube_keep_failed") == 0) {
        return set_duration(name, value, &s->kube_keep_failed_ms, err);
    } else if (strcmp(name, "kube_gpus") == 0) {
        if (strcmp(value, "auto") == 0)
            s->kube_gpus = -1;
        else if (parse_int(value, 0, 1000000, &s->kube_gpus) < 0)
            return kiln_err_set(err, -EINVAL, "kube_gpus must be auto or a number of GPUs, got '%s'",
                                value);
    } else if (strcmp(name, "kube_gpu_node_selector") == 0) {
        if (!strchr(value, '='))
            return kiln_err_set(err, -EINVAL, "kube_gpu_node_selector must be key=value, got '%s'",
                                value);
        replace(&s->kube_gpu_node_selector, value);
    } else if (strcmp(name, "kube_gpu_runtime_class") == 0) {
        replace(&s->kube_gpu_runtime_class, value);
    } else if (strcmp(name, "kube_create_qps") == 0) {
        char *end;
        double q = strtod(value, &end);
        if (end == value || *end || q <= 0 || q > 100000)
            return kiln_err_set(err, -EINVAL, "kube_create_qps must be a positive number, got '%s'",
                                value);
        s->kube_create_qps = q;
    } else if (strcmp(name, "log_level") == 0) {
        if (strcmp(value, "error") && strcmp(value, "warn") && strcmp(value, "info") &&
            strcmp(value, "debug"))
            return kiln_err_set(err, -EINVAL, "log_level must be error, warn, info or debug");
        replace(&s->log_level, value);
    } else {
        const char *best = NULL;
        int bd = 3;
        for (size_t i = 0; i < ARRAY_LEN(names); i++) {
            int d = levenshtein(name, names[i]);
            if (d < bd)
                bd = d, best = names[i];
        }
        if (best)
            return kiln_err_set(err, -EINVAL, "unknown setting '%s' (did you mean '%s'?)", name,
                                best);
        return kiln_err_set(err, -EINVAL, "unknown setting '%s'", name);
    }
    return 0;
}

static int add_pool(struct kiln_settings *s, const char *name, const char *slots,
                    struct kiln_err *err)
{
    int n;
    if (!ident_valid(name))
        return kiln_err_set(err, -EINVAL, "invalid pool name '%s'", name);
    if (parse_int(slots, 1, 1000000, &n) < 0)
        return kiln_err_set(err, -EINVAL, "pool '%s': slots must be a positive integer, got '%s'",
                            name, slots);
    for (size_t i = 0; i < s->n_pools; i++)
        if (strcmp(s->pools[i].name, name) == 0) {
            s->pools[i].slots = n;
            return 0;
        }
    s->pools = xrealloc(s->pools, (s->n_pools + 1) * sizeof *s->pools);
    s->pools[s->n_pools].name = xstrdup(name);
    s->pools[s->n_pools].slots = n;
    s->n_pools++;
    return 0;
}

int settings_set_pool(struct kiln_settings *s, const char *spec, struct kiln_err *err)
{
    const char *eq = strchr(spec, '=');
    if (!eq)
        return kiln_err_set(err, -EINVAL, "pool must be NAME=SLOTS, got '%s'", spec);
    char *name = xstrndup(spec, (size_t)(eq - spec));
    int rc = add_pool(s, name, eq + 1, err);
    free(name);
    return rc;
}

static int load_file(struct kiln_settings *s, const char *path, struct kiln_err *err)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = file_read_all(path, &buf, &len);
    if (rc < 0)
        return kiln_err_set(err, rc, "%s: %s", path, strerror(-rc));
    yaml_parser_t p;
    yaml_document_t doc;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
    if (!yaml_parser_load(&p, &doc)) {
        rc = kiln_err_set(err, KILN_EPARSE, "%s:%zu:%zu: %s", path, p.problem_mark.line + 1,
                          p.problem_mark.column + 1, p.problem ? p.problem : "YAML error");
        yaml_parser_delete(&p);
        free(buf);
        return rc;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && root->type != YAML_MAPPING_NODE) {
        rc = kiln_err_set(err, KILN_EPARSE, "%s:%zu:%zu: expected a map of settings", path,
                          root->start_mark.line + 1, root->start_mark.column + 1);
        goto out;
    }
    for (yaml_node_pair_t *pr = root ? root->data.mapping.pairs.start : NULL;
         pr && pr < root->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = yaml_document_get_node(&doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(&doc, pr->value);
        const char *key = k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "";
        if (strcmp(key, "pools") == 0) {
            if (v->type != YAML_MAPPING_NODE) {
                rc = kiln_err_set(err, KILN_EPARSE, "%s:%zu:%zu: 'pools' must be a map of "
                                  "name: slots", path, v->start_mark.line + 1,
                                  v->start_mark.column + 1);
                goto out;
            }
            for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top;
                 q++) {
                yaml_node_t *pk = yaml_document_get_node(&doc, q->key);
                yaml_node_t *pv = yaml_document_get_node(&doc, q->value);
                struct kiln_err e = { 0 };
                if (pk->type != YAML_SCALAR_NODE || pv->type != YAML_SCALAR_NODE ||
                    add_pool(s, (const char *)pk->data.scalar.value,
                             (const char *)pv->data.scalar.value, &e) < 0) {
                    rc = kiln_err_set(err, KILN_EPARSE, "%s:%zu:%zu: %s", path,
                                      pv->start_mark.line + 1, pv->start_mark.column + 1,
                                      e.code ? e.msg : "pool must be name: slots");
                    goto out;
                }
            }
            continue;
        }
        struct kiln_err e = { 0 };
        if (v->type != YAML_SCALAR_NODE) {
            rc = kiln_err_set(err, KILN_EPARSE, "%s:%zu:%zu: '%s' must be a single value", path,
                              v->start_mark.line + 1, v->start_mark.column + 1, key);
            goto out;
        }
        if (settings_set(s, key, (const char *)v->data.scalar.value, &e) < 0) {
            yaml_node_t *at = strstr(e.msg, "unknown setting") ? k : v;
            rc = kiln_err_set(err, KILN_EPARSE, "%s:%zu:%zu: %s", path, at->start_mark.line + 1,
                              at->start_mark.column + 1, e.msg);
            goto out;
        }
    }
    rc = 0;
out:
    yaml_document_delete(&doc);
    yaml_parser_delete(&p);
    free(buf);
    return rc;
}

int settings_load(struct kiln_settings *s, const char *config_path, struct kiln_err *err)
{
    memset(s, 0, sizeof *s);
    s->home = xstrdup(".kiln");
    s->dags = xstrdup("dags");
    s->bind = xstrdup("127.0.0.1");
    s->port = 8080;
    s->executor = xstrdup("local");
    s->parallelism = 32;
    s->kill_grace_ms = 5000;
    s->log_level = xstrdup("info");
    s->infra_retry_delay_ms = 10 * 1000;
    s->kube_pending_timeout_ms = 5 * 60 * 1000;
    s->kube_image_pull_grace_ms = 60 * 1000;
    s->kube_keep_failed_ms = 60 * 60 * 1000;
    s->kube_gpus = -1;
    s->kube_create_qps = 10;
    int rc;
    if (config_path || (config_path = getenv("KILN_CONFIG")) != NULL) {
        if ((rc = load_file(s, config_path, err)) < 0)
            return rc;
    } else if (access("kiln.yaml", R_OK) == 0) {
        if ((rc = load_file(s, "kiln.yaml", err)) < 0)
            return rc;
    }
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        char env[64] = "KILN_";
        for (size_t j = 0; names[i][j] && j < 50; j++)
            env[5 + j] = (char)toupper((unsigned char)names[i][j]);
        const char *v = getenv(env);
        if (v && *v && (rc = settings_set(s, names[i], v, err)) < 0)
            return kiln_err_set(err, rc, "%s: %s", env, err->msg);
    }
    return 0;
}

void settings_free(struct kiln_settings *s)
{
    free(s->home);
    free(s->dags);
    free(s->bind);
    free(s->executor);
    free(s->log_level);
    free(s->kube_config);
    free(s->kube_context);
    free(s->kube_namespace);
    free(s->kube_instance);
    free(s->kube_gpu_node_selector);
    free(s->kube_gpu_runtime_class);
    for (size_t i = 0; i < s->n_pools; i++)
        free((char *)s->pools[i].name);
    free(s->pools);
    memset(s, 0, sizeof *s);
}
