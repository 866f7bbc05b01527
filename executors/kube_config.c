/* kube_config: kubeconfig (libyaml document API), in-cluster config, tokens. */
#include "kube_config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml.h>
#include <json-c/json.h>
#include <openssl/evp.h>

#include "util.h"

extern char **environ;

/* ------------------------------------------------------------- helpers */

int kube_base64_decode(const char *in, struct kube_blob *out)
{
    size_t n = strlen(in), k = 0;
    char *clean = xmalloc(n + 1);
    for (size_t i = 0; i < n; i++)
        if (in[i] != ' ' && in[i] != '\n' && in[i] != '\r' && in[i] != '\t')
            clean[k++] = in[i];
    clean[k] = 0;
    if (k % 4 != 0) {
        free(clean);
        return -EINVAL;
    }
    unsigned char *buf = xmalloc(k / 4 * 3 + 1);
    int r = k ? EVP_DecodeBlock(buf, (const unsigned char *)clean, (int)k) : 0;
    if (r < 0) {
        free(clean);
        free(buf);
        return -EINVAL;
    }
    size_t len = (size_t)r;
    if (k >= 1 && clean[k - 1] == '=') len--;
    if (k >= 2 && clean[k - 2] == '=') len--;
    buf[len] = 0;
    free(clean);
    out->data = (char *)buf;
    out->len = len;
    return 0;
}

int kube_parse_rfc3339(const char *s, time_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p) return -EINVAL;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++) {}
    long off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int hh, mm;
        if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2) return -EINVAL;
        off = (hh * 3600L + mm * 60L) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -EINVAL;
    }
    if (*p) return -EINVAL;
    *out = timegm(&tm) - off;
    return 0;
}

static struct kube_config *cfg_new(void)
{
    return xcalloc(1, sizeof(struct kube_config));
}

static void strv_free(char **v)
{
    if (!v) return;
    for (char **p = v; *p; p++) free(*p);
    free(v);
}

void kube_config_free(struct kube_config *c)
{
    if (!c) return;
    free(c->server);
    free(c->namespace);
    free(c->context);
    free(c->ca_file);
    free(c->ca.data);
    free(c->cert_file);
    free(c->key_file);
    free(c->cert.data);
    free(c->key.data);
    free(c->token);
    free(c->token_file);
    strv_free(c->exec_argv);
    strv_free(c->exec_env);
    free(c->exec_api_version);
    free(c->file_token);
    free(c->exec_token);
    free(c);
}

static char *trim_dup(const char *s, size_t n)
{
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    while (n && (*s == ' ' || *s == '\t' || *s == '\n')) { s++; n--; }
    return xstrndup(s, n);
}

/* ------------------------------------------------------------ kubeconfig */

struct kc {
    yaml_document_t doc;
    const char *path;
    char *dir;
    struct kiln_err *err;
};

static int kc_fail(struct kc *k, yaml_node_t *n, const char *fmt, const char *a, const char *b)
{
    char msg[512];
    snprintf(msg, sizeof msg, fmt, a ? a : "", b ? b : "");
    if (n)
        return kiln_err_set(k->err, KILN_EINVALID, "%s:%zu:%zu: %s", k->path,
                            n->start_mark.line + 1, n->start_mark.column + 1, msg);
    return kiln_err_set(k->err, KILN_EINVALID, "%s: %s", k->path, msg);
}

static yaml_node_t *kc_get(struct kc *k, yaml_node_t *map, const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE) return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(&k->doc, p->key);
        if (kn && kn->type == YAML_SCALAR_NODE && strcmp((char *)kn->data.scalar.value, key) == 0)
            return yaml_document_get_node(&k->doc, p->value);
    }
    return NULL;
}

/* A scalar value of key in map, or NULL if absent; -1 through *bad on a wrong type. */
static const char *kc_str(struct kc *k, yaml_node_t *map, const char *key, int *bad)
{
    yaml_node_t *n = kc_get(k, map, key);
    if (!n) return NULL;
    if (n->type != YAML_SCALAR_NODE) {
        kc_fail(k, n, "%s: expected a string", key, NULL);
        *bad = 1;
        return NULL;
    }
    return (const char *)n->data.scalar.value;
}

/* Finds the entry named name in the sequence key (clusters, users, contexts)
 * and returns its inner object (entry[field]). */
static yaml_node_t *kc_named(struct kc *k, const char *key, const char *field, const char *name,
                             yaml_node_t **entry_out)
{
    yaml_node_t *root = yaml_document_get_root_node(&k->doc);
    yaml_node_t *seq = kc_get(k, root, key);
    if (!seq || seq->type != YAML_SEQUENCE_NODE) return NULL;
    for (yaml_node_item_t *i = seq->data.sequence.items.start; i < seq->data.sequence.items.top; i++) {
        yaml_node_t *e = yaml_document_get_node(&k->doc, *i);
        yaml_node_t *nn = kc_get(k, e, "name");
        if (nn && nn->type == YAML_SCALAR_NODE && strcmp((char *)nn->data.scalar.value, name) == 0) {
            if (entry_out) *entry_out = e;
            return kc_get(k, e, field);
        }
    }
    return NULL;
}

static char *kc_path(struct kc *k, const char *p)
{
    if (p[0] == '/') return xstrdup(p);
    return xasprintf("%s/%s", k->dir, p);
}

static int kc_data(struct kc *k, yaml_node_t *map, const char *key, struct kube_blob *out)
{
    int bad = 0;
    const char *s = kc_str(k, map, key, &bad);
    if (bad) return KILN_EINVALID;
    if (!s) return 0;
    if (kube_base64_decode(s, out) < 0)
        return kc_fail(k, kc_get(k, map, key), "%s: not valid base64", key, NULL);
    return 0;
}

static int kc_exec(struct kc *k, struct kube_config *c, yaml_node_t *ex)
{
    int bad = 0;
    if (ex->type != YAML_MAPPING_NODE) return kc_fail(k, ex, "user.exec: expected a mapping", NULL, NULL);
    const char *cmd = kc_str(k, ex, "command", &bad);
    if (bad) return KILN_EINVALID;
    if (!cmd || !*cmd) return kc_fail(k, ex, "user.exec: command is required", NULL, NULL);
    const char *av = kc_str(k, ex, "apiVersion", &bad);
    if (bad) return KILN_EINVALID;
    c->exec_api_version = xstrdup(av ? av : "client.authentication.k8s.io/v1beta1");
    yaml_node_t *args = kc_get(k, ex, "args");
    size_t na = 0;
    if (args && args->type == YAML_SEQUENCE_NODE)
        na = (size_t)(args->data.sequence.items.top - args->data.sequence.items.start);
    else if (args && !(args->type == YAML_SCALAR_NODE && args->data.scalar.length == 0))
        return kc_fail(k, args, "user.exec.args: expected a list of strings", NULL, NULL);
    c->exec_argv = xcalloc(na + 2, sizeof(char *));
    /* a relative command with a slash is relative to the kubeconfig's directory */
    c->exec_argv[0] = (cmd[0] != '/' && strchr(cmd, '/')) ? kc_path(k, cmd) : xstrdup(cmd);
    for (size_t i = 0; i < na; i++) {
        yaml_node_t *a = yaml_document_get_node(&k->doc, args->data.sequence.items.start[i]);
        if (!a || a->type != YAML_SCALAR_NODE)
            return kc_fail(k, a, "user.exec.args: expected a list of strings", NULL, NULL);
        c->exec_argv[i + 1] = xstrdup((char *)a->data.scalar.value);
    }
    yaml_node_t *env = kc_get(k, ex, "env");
    size_t ne = 0;
    if (env && env->type == YAML_SEQUENCE_NODE)
        ne = (size_t)(env->data.sequence.items.top - env->data.sequence.items.start);
    else if (env && !(env->type == YAML_SCALAR_NODE && env->data.scalar.length == 0))
        return kc_fail(k, env, "user.exec.env: expected a list of {name, value}", NULL, NULL);
    c->exec_env = xcalloc(ne + 1, sizeof(char *));
    for (size_t i = 0; i < ne; i++) {
        yaml_node_t *e = yaml_document_get_node(&k->doc, env->data.sequence.items.start[i]);
        const char *n = kc_str(k, e, "name", &bad), *v = kc_str(k, e, "value", &bad);
        if (bad) return KILN_EINVALID;
        if (!n || !*n || !v) return kc_fail(k, e, "user.exec.env: each entry needs name and value", NULL, NULL);
        c->exec_env[i] = xasprintf("%s=%s", n, v);
    }
    return 0;
}

static int kc_build(struct kc *k, const char *want, struct kube_config *c)
{
    yaml_node_t *root = yaml_document_get_root_node(&k->doc);
    int bad = 0;
    if (!root || root->type != YAML_MAPPING_NODE)
        return kc_fail(k, root, "not a kubeconfig (expected a mapping)", NULL, NULL);
    const char *ctxname = want;
    if (!ctxname) {
        ctxname = kc_str(k, root, "current-context", &bad);
        if (bad) return KILN_EINVALID;
        if (!ctxname || !*ctxname) return kc_fail(k, NULL, "no current-context and no context named", NULL, NULL);
    }
    c->context = xstrdup(ctxname);
    yaml_node_t *centry = NULL;
    yaml_node_t *ctx = kc_named(k, "contexts", "context", ctxname, &centry);
    if (!ctx) return kc_fail(k, centry ? centry : kc_get(k, root, "contexts"), "context \"%s\" not found", ctxname, NULL);
    const char *cl = kc_str(k, ctx, "cluster", &bad), *us = kc_str(k, ctx, "user", &bad),
               *ns = kc_str(k, ctx, "namespace", &bad);
    if (bad) return KILN_EINVALID;
    if (!cl || !*cl) return kc_fail(k, ctx, "context \"%s\" names no cluster", ctxname, NULL);
    c->namespace = xstrdup(ns && *ns ? ns : "default");

    yaml_node_t *clentry = NULL;
    yaml_node_t *cluster = kc_named(k, "clusters", "cluster", cl, &clentry);
    if (!cluster) return kc_fail(k, ctx, "context \"%s\": cluster \"%s\" not found", ctxname, cl);
    const char *server = kc_str(k, cluster, "server", &bad);
    if (bad) return KILN_EINVALID;
    if (!server || !*server) return kc_fail(k, cluster, "cluster \"%s\" has no server", cl, NULL);
    if (strncmp(server, "https://", 8) != 0 && strncmp(server, "http://", 7) != 0)
        return kc_fail(k, kc_get(k, cluster, "server"), "cluster \"%s\": server \"%s\" is not an http(s) URL", cl, server);
    size_t sl = strlen(server);
    while (sl > 8 && server[sl - 1] == '/') sl--;
    c->server = xstrndup(server, sl);
    const char *ins = kc_str(k, cluster, "insecure-skip-tls-verify", &bad);
    if (bad) return KILN_EINVALID;
    c->insecure = ins && (strcmp(ins, "true") == 0 || strcmp(ins, "True") == 0);
    const char *caf = kc_str(k, cluster, "certificate-authority", &bad);
    if (bad) return KILN_EINVALID;
    if (caf && *caf) c->ca_file = kc_path(k, caf);
    int r = kc_data(k, cluster, "certificate-authority-data", &c->ca);
    if (r) return r;

    if (us && *us) {
        yaml_node_t *user = kc_named(k, "users", "user", us, NULL);
        if (!user) return kc_fail(k, ctx, "context \"%s\": user \"%s\" not found", ctxname, us);
        if (user->type == YAML_MAPPING_NODE) {
            const char *cf = kc_str(k, user, "client-certificate", &bad),
                       *kf = kc_str(k, user, "client-key", &bad),
                       *tok = kc_str(k, user, "token", &bad),
                       *tf = kc_str(k, user, "tokenFile", &bad);
            if (bad) return KILN_EINVALID;
            if (cf && *cf) c->cert_file = kc_path(k, cf);
            if (kf && *kf) c->key_file = kc_path(k, kf);
            if (tok && *tok) c->token = xstrdup(tok);
            if (tf && *tf) c->token_file = kc_path(k, tf);
            if ((r = kc_data(k, user, "client-certificate-data", &c->cert)) ||
                (r = kc_data(k, user, "client-key-data", &c->key)))
                return r;
            if ((c->cert.data || c->cert_file) != (c->key.data || c->key_file))
                return kc_fail(k, user, "user \"%s\": a client certificate needs a client key and the other way round", us, NULL);
            if (kc_get(k, user, "auth-provider"))
                return kc_fail(k, kc_get(k, user, "auth-provider"),
                               "user \"%s\": auth-provider is not supported (use an exec plugin)", us, NULL);
            yaml_node_t *ex = kc_get(k, user, "exec");
            if (ex && (r = kc_exec(k, c, ex))) return r;
        }
    }
    return 0;
}

int kube_config_load_kubeconfig(const char *path, const char *context,
                                struct kube_config **out, struct kiln_err *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return kiln_err_set(err, -errno, "kubeconfig %s: %s", path, strerror(errno));
    yaml_parser_t p;
    struct kc k;
    memset(&k, 0, sizeof k);
    k.path = path;
    k.err = err;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_file(&p, f);
    if (!yaml_parser_load(&p, &k.doc)) {
        int rc = kiln_err_set(err, KILN_EPARSE, "%s:%zu:%zu: %s", path, p.problem_mark.line + 1,
                              p.problem_mark.column + 1, p.problem ? p.problem : "YAML error");
        yaml_parser_delete(&p);
        fclose(f);
        return rc;
    }
    yaml_parser_delete(&p);
    fclose(f);
    const char *slash = strrchr(path, '/');
    k.dir = slash ? xstrndup(path, (size_t)(slash - path)) : xstrdup(".");
    if (slash == path) { free(k.dir); k.dir = xstrdup("/"); }
    struct kube_config *c = cfg_new();
    int rc = kc_build(&k, context, c);
    yaml_document_delete(&k.doc);
    free(k.dir);
    if (rc) {
        kube_config_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* ------------------------------------------------------------ in-cluster */

int kube_config_load_incluster(const char *sa_dir, struct kube_config **out, struct kiln_err *err)
{
    *out = NULL;
    if (!sa_dir) sa_dir = KUBE_SA_DIR;
    const char *host = getenv("KUBERNETES_SERVICE_HOST"), *port = getenv("KUBERNETES_SERVICE_PORT");
    if (!host || !*host || !port || !*port)
        return kiln_err_set(err, KILN_EINVALID,
                            "not in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set");
    struct kube_config *c = cfg_new();
    c->server = strchr(host, ':') ? xasprintf("https://[%s]:%s", host, port)
                                  : xasprintf("https://%s:%s", host, port);
    c->token_file = xasprintf("%s/token", sa_dir);
    if (access(c->token_file, R_OK) != 0) {
        int rc = kiln_err_set(err, -errno, "in-cluster config: %s: %s", c->token_file, strerror(errno));
        kube_config_free(c);
        return rc;
    }
    char *ca = xasprintf("%s/ca.crt", sa_dir);
    if (access(ca, R_OK) == 0) c->ca_file = ca;
    else free(ca);
    char *nsp = xasprintf("%s/namespace", sa_dir), *ns = NULL;
    size_t len = 0;
    if (file_read_all(nsp, &ns, &len) == 0) {
        c->namespace = trim_dup(ns, len);
        free(ns);
    }
    free(nsp);
    if (!c->namespace || !*c->namespace) {
        free(c->namespace);
        c->namespace = xstrdup("default");
    }
    *out = c;
    return 0;
}

/* --------------------------------------------------------------- tokens */

static int read_token_file(struct kube_config *c, struct kiln_err *err)
{
    struct stat st;
    if (stat(c->token_file, &st) != 0)
        return kiln_err_set(err, -errno, "token file %s: %s", c->token_file, strerror(errno));
    if (c->file_token && st.st_mtim.tv_sec == c->file_mtime && st.st_mtim.tv_nsec == c->file_mtime_ns &&
        st.st_size == c->file_size)
        return 0;
    char *s = NULL;
    size_t len = 0;
    int r = file_read_all(c->token_file, &s, &len);
    if (r < 0) return kiln_err_set(err, r, "token file %s: %s", c->token_file, strerror(-r));
    free(c->file_token);
    c->file_token = trim_dup(s, len);
    free(s);
    c->file_mtime = st.st_mtim.tv_sec;
    c->file_mtime_ns = st.st_mtim.tv_nsec;
    c->file_size = st.st_size;
    return 0;
}

char **kube_config_exec_envp(const struct kube_config *c)
{
    size_t nenv = 0, nadd = 0;
    for (char **e = environ; *e; e++) nenv++;
    for (char **e = c->exec_env; e && *e; e++) nadd++;
    char **envp = xcalloc(nenv + nadd + 2, sizeof(char *));
    size_t k = 0;
    for (char **e = environ; *e; e++) {
        size_t nl = strcspn(*e, "=");
        int dup = strncmp(*e, "KUBERNETES_EXEC_INFO=", 21) == 0;
        for (char **a = c->exec_env; a && *a && !dup; a++)
            dup = strncmp(*a, *e, nl + 1) == 0;
        if (!dup) envp[k++] = xstrdup(*e);
    }
    for (char **e = c->exec_env; e && *e; e++) envp[k++] = xstrdup(*e);
    envp[k++] = xasprintf("KUBERNETES_EXEC_INFO={\"apiVersion\":\"%s\",\"kind\":\"ExecCredential\","
                          "\"spec\":{\"interactive\":false}}", c->exec_api_version);
    return envp;
}

void kube_config_exec_envp_free(char **envp)
{
    strv_free(envp);
}

int kube_config_exec_due(const struct kube_config *c, time_t now, int ahead_s)
{
    return c->exec_argv && (!c->exec_token || (c->exec_expiry && now + ahead_s >= c->exec_expiry));
}

int kube_config_exec_accept(struct kube_config *c, const char *out, size_t len, int timed_out,
                            int exit_status, int term_signal, struct kiln_err *err)
{
    if (timed_out)
        return kiln_err_set(err, KILN_EEXEC, "exec plugin %s: no answer in %d s", c->exec_argv[0],
                            KUBE_EXEC_TIMEOUT_S);
    if (term_signal || exit_status != 0)
        return kiln_err_set(err, KILN_EEXEC, "exec plugin %s: %s %d", c->exec_argv[0],
                            term_signal ? "killed by signal" : "exited with status",
                            term_signal ? term_signal : exit_status);
    json_tokener *tk = json_tokener_new();
    json_object *j = len ? json_tokener_parse_ex(tk, out, (int)len) : NULL;
    json_tokener_free(tk);
    json_object *st = NULL, *tok = NULL, *exp = NULL;
    int rc = 0;
    if (!j || !json_object_object_get_ex(j, "status", &st) ||
        !json_object_object_get_ex(st, "token", &tok) || !json_object_is_type(tok, json_type_string) ||
        !*json_object_get_string(tok)) {
        rc = kiln_err_set(err, KILN_EEXEC, "exec plugin %s: output is not an ExecCredential with status.token",
                          c->exec_argv[0]);
    } else {
        time_t t = 0;
        if (json_object_object_get_ex(st, "expirationTimestamp", &exp) &&
            kube_parse_rfc3339(json_object_get_string(exp), &t) < 0) {
            rc = kiln_err_set(err, KILN_EEXEC, "exec plugin %s: bad status.expirationTimestamp \"%s\"",
                              c->exec_argv[0], json_object_get_string(exp));
        } else {
            free(c->exec_token);
            c->exec_token = xstrdup(json_object_get_string(tok));
            c->exec_expiry = t;
        }
    }
    json_object_put(j);
    return rc;
}

/* Runs the plugin and waits for it (argv, no shell), stdout captured, with
 * the same time limit.  For callers without a loop; kube_client runs it
 * asynchronously instead. */
static int run_exec(struct kube_config *c, struct kiln_err *err)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return kiln_err_set(err, -errno, "exec plugin: pipe: %s", strerror(errno));
    char **envp = kube_config_exec_envp(c);
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        strv_free(envp);
        return kiln_err_set(err, -e, "exec plugin: fork: %s", strerror(e));
    }
    if (pid == 0) {
        dup2(fds[1], 1);
        int dn = open("/dev/null", O_RDONLY);
        if (dn >= 0) dup2(dn, 0);
        environ = envp;
        execvp(c->exec_argv[0], c->exec_argv);
        _exit(127);
    }
    close(fds[1]);
    strv_free(envp);
    struct sbuf out;
    sbuf_init(&out);
    int64_t deadline = mono_us() + KUBE_EXEC_TIMEOUT_S * 1000000LL;
    int timed_out = 0;
    for (;;) {
        int64_t left = (deadline - mono_us()) / 1000;
        if (left <= 0) { timed_out = 1; break; }
        struct pollfd pf = {fds[0], POLLIN, 0};
        int pr = poll(&pf, 1, (int)left);
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0) { timed_out = 1; break; }
        char buf[4096];
        ssize_t n = read(fds[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (out.len < KUBE_EXEC_MAX_OUTPUT) sbuf_add(&out, buf, (size_t)n);
    }
    close(fds[0]);
    if (timed_out) kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    int rc = kube_config_exec_accept(c, out.data, out.len, timed_out,
                                     WIFEXITED(status) ? WEXITSTATUS(status) : 0,
                                     WIFSIGNALED(status) ? WTERMSIG(status) : 0, err);
    sbuf_free(&out);
    return rc;
}

int kube_config_token(struct kube_config *c, const char **token, struct kiln_err *err)
{
    *token = NULL;
    if (c->exec_argv) {
        /* refresh 10 s before expiry */
        if (kube_config_exec_due(c, time(NULL), 10)) {
            int r = run_exec(c, err);
            if (r) return r;
        }
        *token = c->exec_token;
        return 0;
    }
    if (c->token_file) {
        int r = read_token_file(c, err);
        if (r) return r;
        *token = c->file_token;
        return 0;
    }
    *token = c->token;
    return 0;
}

void kube_config_invalidate_token(struct kube_config *c)
{
    free(c->exec_token);
    c->exec_token = NULL;
    free(c->file_token);
    c->file_token = NULL;
}
