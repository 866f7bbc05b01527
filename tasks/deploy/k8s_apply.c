/* k8s_apply: render and apply the kiln-serve Deployment + Service of a model
 * version; see k8s_apply.h. */
#include "k8s_apply.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "kube_config.h"
#include "util.h"

#define JFLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
#define MAX_TRIES 4       /* transient answers (429, 5xx, network) */
#define MAX_RESTARTS 3    /* GET-then-write races lost to another writer */

void kapply_opts_default(struct kapply_opts *o)
{
    memset(o, 0, sizeof *o);
    o->image = KAPPLY_IMAGE;
    o->claim = KAPPLY_CLAIM;
    o->replicas = 1;
}

static int is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int kapply_object_name(const char *model, char *out, size_t n, struct kiln_err *err)
{
    static const char prefix[] = "kiln-serve-";
    size_t len = strlen(model);
    /* The exact name also goes into a label value: alphanumeric at both ends. */
    if (len == 0 || len > 63 - (sizeof prefix - 1) || !is_alnum(model[0]) || !is_alnum(model[len - 1]))
        return kiln_err_set(err, KILN_EINVALID,
                            "model name '%s' cannot name Kubernetes objects: it must start and end with a "
                            "letter or digit and have at most %zu characters", model,
                            63 - (sizeof prefix - 1));
    if (n < sizeof prefix + len)
        return kiln_err_set(err, -ENAMETOOLONG, "object name buffer too small");
    char *p = out + snprintf(out, n, "%s", prefix);
    for (const char *s = model; *s; s++)
        *p++ = (*s >= 'A' && *s <= 'Z') ? (char)(*s - 'A' + 'a') : (*s == '_' || *s == '.') ? '-' : *s;
    *p = '\0';
    return 0;
}

/* ------------------------------------------------------------- render */

static json_object *jstr(const char *s) { return json_object_new_string(s); }
static json_object *jint(long v) { return json_object_new_int64(v); }

static json_object *jstrv(const char *const *v, size_t n)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < n; i++)
        json_object_array_add(a, jstr(v[i]));
    return a;
}

static void add(json_object *o, const char *k, json_object *v) { json_object_object_add(o, k, v); }

static json_object *obj(void) { return json_object_new_object(); }

/* The labels every object and pod carries; the selector uses the first two
 * and the model only, never the version, so a new version updates the same
 * Deployment and the Service keeps selecting its pods. */
static json_object *labels(const char *oname, const char *model, const char *version, int selector)
{
    json_object *l = obj();
    add(l, "app.kubernetes.io/name", jstr("kiln-serve"));
    add(l, "app.kubernetes.io/instance", jstr(oname));
    add(l, "kiln.io/model", jstr(model));
    if (!selector) {
        add(l, "app.kubernetes.io/managed-by", jstr("kiln"));
        add(l, "kiln.io/model-version", jstr(version));
    }
    return l;
}

static json_object *probe(const char *path, long initial, long period)
{
    json_object *p = obj(), *g = obj();
    add(g, "path", jstr(path));
    add(g, "port", jstr("http"));
    add(p, "httpGet", g);
    if (initial)
        add(p, "initialDelaySeconds", jint(initial));
    add(p, "periodSeconds", jint(period));
    return p;
}

int kapply_render(const struct kapply_opts *o, const char *ns, json_object **deployment,
                  json_object **service, struct kiln_err *err)
{
    *deployment = *service = NULL;
    char oname[64], version[32], port[16];
    int rc = kapply_object_name(o->name, oname, sizeof oname, err);
    if (rc)
        return rc;
    if (o->version <= 0)
        return kiln_err_set(err, KILN_EINVALID, "no version to deploy");
    snprintf(version, sizeof version, "%ld", o->version);
    snprintf(port, sizeof port, "%d", KAPPLY_PORT);

    json_object *d = obj(), *meta = obj(), *spec = obj(), *sel = obj(), *strat = obj(), *ru = obj();
    add(d, "apiVersion", jstr("apps/v1"));
    add(d, "kind", jstr("Deployment"));
    add(meta, "name", jstr(oname));
    add(meta, "namespace", jstr(ns));
    add(meta, "labels", labels(oname, o->name, version, 0));
    add(d, "metadata", meta);
    add(spec, "replicas", jint(o->replicas));
    add(spec, "revisionHistoryLimit", jint(5));
    add(sel, "matchLabels", labels(oname, o->name, version, 1));
    add(spec, "selector", sel);
    /* A new version starts before the old one stops: no gap in serving. */
    add(strat, "type", jstr("RollingUpdate"));
    add(ru, "maxUnavailable", jint(0));
    add(ru, "maxSurge", jint(1));
    add(strat, "rollingUpdate", ru);
    add(spec, "strategy", strat);

    json_object *tmpl = obj(), *tmeta = obj(), *pspec = obj(), *psec = obj(), *seccomp = obj();
    add(tmeta, "labels", labels(oname, o->name, version, 0));
    add(tmpl, "metadata", tmeta);
    add(pspec, "automountServiceAccountToken", json_object_new_boolean(0));
    add(psec, "runAsNonRoot", json_object_new_boolean(1));
    add(psec, "runAsUser", jint(10001));
    add(psec, "runAsGroup", jint(10001));
    add(seccomp, "type", jstr("RuntimeDefault"));
    add(psec, "seccompProfile", seccomp);
    add(pspec, "securityContext", psec);

    json_object *c = obj(), *ports = json_object_new_array(), *p = obj(), *res = obj(), *req = obj(),
                *lim = obj(), *csec = obj(), *caps = obj(), *mounts = json_object_new_array(), *m = obj();
    add(c, "name", jstr("kiln-serve"));
    add(c, "image", jstr(o->image));
    static const char *const cmd[] = { "kiln-serve" };
    add(c, "command", jstrv(cmd, 1));
    const char *args[] = { "--registry", KAPPLY_MOUNT, "--name", o->name, "--version", version,
                           "--bind", "0.0.0.0", "--port", port };
    add(c, "args", jstrv(args, sizeof args / sizeof *args));
    add(p, "name", jstr("http"));
    add(p, "containerPort", jint(KAPPLY_PORT));
    json_object_array_add(ports, p);
    add(c, "ports", ports);
    add(c, "readinessProbe", probe("/healthz", 0, 5));
    add(c, "livenessProbe", probe("/healthz", 10, 20));
    add(req, "cpu", jstr("100m"));
    add(req, "memory", jstr("128Mi"));
    add(lim, "memory", jstr("512Mi"));
    add(res, "requests", req);
    add(res, "limits", lim);
    add(c, "resources", res);
    add(csec, "allowPrivilegeEscalation", json_object_new_boolean(0));
    add(csec, "readOnlyRootFilesystem", json_object_new_boolean(1));
    static const char *const drop[] = { "ALL" };
    add(caps, "drop", jstrv(drop, 1));
    add(csec, "capabilities", caps);
    add(c, "securityContext", csec);
    add(m, "name", jstr("models"));
    add(m, "mountPath", jstr(KAPPLY_MOUNT));
    add(m, "readOnly", json_object_new_boolean(1));
    json_object_array_add(mounts, m);
    add(c, "volumeMounts", mounts);
    json_object *ctrs = json_object_new_array();
    json_object_array_add(ctrs, c);
    add(pspec, "containers", ctrs);

    json_object *vols = json_object_new_array(), *v = obj(), *pvc = obj();
    add(pvc, "claimName", jstr(o->claim));
    add(pvc, "readOnly", json_object_new_boolean(1));
    add(v, "name", jstr("models"));
    add(v, "persistentVolumeClaim", pvc);
    json_object_array_add(vols, v);
    add(pspec, "volumes", vols);
    add(tmpl, "spec", pspec);
    add(spec, "template", tmpl);
    add(d, "spec", spec);

    json_object *s = obj(), *smeta = obj(), *sspec = obj(), *sports = json_object_new_array(), *sp = obj();
    add(s, "apiVersion", jstr("v1"));
    add(s, "kind", jstr("Service"));
    add(smeta, "name", jstr(oname));
    add(smeta, "namespace", jstr(ns));
    add(smeta, "labels", labels(oname, o->name, version, 0));
    add(s, "metadata", smeta);
    add(sspec, "type", jstr("ClusterIP"));
    add(sspec, "selector", labels(oname, o->name, version, 1));
    add(sp, "name", jstr("http"));
    add(sp, "port", jint(KAPPLY_PORT));
    add(sp, "targetPort", jstr("http"));
    add(sp, "protocol", jstr("TCP"));
    json_object_array_add(sports, sp);
    add(sspec, "ports", sports);
    add(s, "spec", sspec);
    *deployment = d;
    *service = s;
    return 0;
}

/* ------------------------------------------------------------- config */

static int load_config(const struct kapply_opts *o, struct kube_config **cfg, struct kiln_err *err)
{
    const char *path = o->kubeconfig;
    char buf[PATH_MAX];
    if (!path) {
        const char *env = getenv("KUBECONFIG");
        if (env && *env) {
            /* Several files separated by ':' are merged by kubectl; here
             * the first one is used. */
            size_t n = strcspn(env, ":");
            if (n >= sizeof buf)
                return kiln_err_set(err, -ENAMETOOLONG, "KUBECONFIG: path too long");
            memcpy(buf, env, n);
            buf[n] = '\0';
            path = buf;
        } else if (getenv("KUBERNETES_SERVICE_HOST")) {
            return kube_config_load_incluster(NULL, cfg, err);
        } else {
            const char *home = getenv("HOME");
            if (!home || snprintf(buf, sizeof buf, "%s/.kube/config", home) >= (int)sizeof buf)
                return kiln_err_set(err, KILN_EINVALID, "no cluster: give --kubeconfig, set KUBECONFIG, or "
                                                        "run in a pod with a service account");
            if (access(buf, R_OK) != 0)
                return kiln_err_set(err, KILN_EINVALID, "no cluster: %s does not exist; give --kubeconfig, set "
                                                        "KUBECONFIG, or run in a pod with a service account", buf);
            path = buf;
        }
    }
    return kube_config_load_kubeconfig(path, o->context, cfg, err);
}

/* --------------------------------------------------------------- HTTP */

struct resp {
    long http;
    struct sbuf body;
    double retry_after;
    char curl_err[CURL_ERROR_SIZE];
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    sbuf_add(&((struct resp *)ud)->body, p, sz * n);
    return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    struct resp *r = ud;
    size_t len = sz * n;
    if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0)
        r->retry_after = atof(p + 12);
    return len;
}

static void tls_options(CURL *e, const struct kube_config *cfg)
{
    if (cfg->insecure) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    struct curl_blob b = { 0 };
    if (cfg->ca.data) {
        b = (struct curl_blob){ cfg->ca.data, cfg->ca.len, CURL_BLOB_COPY };
        curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &b);
    } else if (cfg->ca_file) {
        curl_easy_setopt(e, CURLOPT_CAINFO, cfg->ca_file);
    }
    if (cfg->cert.data) {
        b = (struct curl_blob){ cfg->cert.data, cfg->cert.len, CURL_BLOB_COPY };
        curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &b);
        curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
    } else if (cfg->cert_file) {
        curl_easy_setopt(e, CURLOPT_SSLCERT, cfg->cert_file);
    }
    if (cfg->key.data) {
        b = (struct curl_blob){ cfg->key.data, cfg->key.len, CURL_BLOB_COPY };
        curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &b);
        curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
    } else if (cfg->key_file) {
        curl_easy_setopt(e, CURLOPT_SSLKEY, cfg->key_file);
    }
}

/* One attempt.  Returns 0 with r->http set, or for a failure without an
 * HTTP answer (r->curl_err says which) -EIO when worth retrying, -EPROTO
 * when not. */
static int attempt(CURL *e, struct kube_config *cfg, const char *method, const char *url, const char *body,
                   struct resp *r, struct kiln_err *err)
{
    const char *token = NULL;
    int rc = kube_config_token(cfg, &token, err);
    if (rc)
        return rc;
    curl_easy_reset(e);
    sbuf_free(&r->body);
    sbuf_init(&r->body);
    r->http = 0;
    r->retry_after = 0;
    r->curl_err[0] = '\0';
    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
    h = curl_slist_append(h, "Content-Type: application/json");
    char *auth = token ? xasprintf("Authorization: Bearer %s", token) : NULL;
    if (auth)
        h = curl_slist_append(h, auth);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->curl_err);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "kiln-deploy");
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
    tls_options(e, cfg);
    CURLcode cc = curl_easy_perform(e);
    curl_slist_free_all(h);
    if (auth) {
        explicit_bzero(auth, strlen(auth));
        free(auth);
    }
    if (cc != CURLE_OK) {
        if (!r->curl_err[0])
            snprintf(r->curl_err, sizeof r->curl_err, "%s", curl_easy_strerror(cc));
        /* Connection trouble may pass; a TLS or configuration error will not. */
        int transient = cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
                        cc == CURLE_OPERATION_TIMEDOUT || cc == CURLE_SEND_ERROR ||
                        cc == CURLE_RECV_ERROR || cc == CURLE_GOT_NOTHING || cc == CURLE_PARTIAL_FILE;
        return transient ? -EIO : -EPROTO;
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->http);
    return 0;
}

/* A request with retries for transient answers (429, 5xx, no answer) and
 * one retry after a 401 with a token that may have rotated.  Returns 0 with
 * an HTTP status in r->http (any status), or an error. */
static int request(CURL *e, struct kube_config *cfg, const char *method, const char *path, const char *body,
                   struct resp *r, struct kiln_err *err)
{
    char *url = xasprintf("%s%s", cfg->server, path);
    int rc = 0, reauth = 0;
    for (int i = 0; i < MAX_TRIES; i++) {
        rc = attempt(e, cfg, method, url, body, r, err);
        if (rc == -EIO || (rc == 0 && (r->http == 429 || r->http >= 500))) {
            if (i + 1 == MAX_TRIES)
                break;
            double wait = 0.5 * (1 << i);
            if (r->retry_after > wait)
                wait = r->retry_after > 10 ? 10 : r->retry_after;
            struct timespec ts = { (time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9) };
            nanosleep(&ts, NULL);
            continue;
        }
        if (rc == 0 && r->http == 401 && !reauth && (cfg->token_file || cfg->exec_argv)) {
            reauth = 1;
            kube_config_invalidate_token(cfg);
            i--;
            continue;
        }
        break;
    }
    if (rc == -EIO || rc == -EPROTO)
        rc = kiln_err_set(err, KILN_EEXEC, "%s %s: %s", method, url, r->curl_err);
    free(url);
    return rc;
}

/* "403 Forbidden: MESSAGE" from a Status body (or the raw body). */
static void status_text(const struct resp *r, char *out, size_t n, char *reason, size_t rn)
{
    json_object *j = r->body.len ? json_tokener_parse(r->body.data) : NULL, *v;
    const char *msg = NULL, *why = NULL;
    if (j && json_object_is_type(j, json_type_object)) {
        if (json_object_object_get_ex(j, "message", &v))
            msg = json_object_get_string(v);
        if (json_object_object_get_ex(j, "reason", &v))
            why = json_object_get_string(v);
    }
    snprintf(reason, rn, "%s", why ? why : "");
    if (msg)
        snprintf(out, n, "%ld %s: %s", r->http, why ? why : "", msg);
    else
        snprintf(out, n, "%ld: %.200s", r->http, r->body.len ? r->body.data : "(no body)");
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    json_object_put(j);
}

static int api_error(const struct resp *r, const char *verb, const char *what, const char *name,
                     const char *ns, struct kiln_err *err)
{
    char text[768], reason[64];
    status_text(r, text, sizeof text, reason, sizeof reason);
    const char *hint = r->http == 403 ? " (the service account needs get, create and update on deployments "
                                        "and services: deploy/model-serve-rbac.yaml)"
                     : r->http == 401 ? " (check the token or client certificate)"
                     : "";
    return kiln_err_set(err, KILN_EEXEC, "cannot %s %s \"%s\" in namespace \"%s\": %s%s", verb, what, name, ns,
                        text, hint);
}

struct kind {
    const char *api;      /* "/apis/apps/v1" */
    const char *resource; /* "deployments" */
    const char *what;     /* "deployments.apps", for messages */
};

/* GET; 404 -> POST; 200 -> PUT with the resourceVersion read. */
static int apply_one(CURL *e, struct kube_config *cfg, const struct kind *k, const char *ns, json_object *o,
                     const char *model, const char **action, struct kiln_err *err)
{
    json_object *meta = json_object_object_get(o, "metadata");
    const char *name = json_object_get_string(json_object_object_get(meta, "name"));
    char *coll = xasprintf("%s/namespaces/%s/%s", k->api, ns, k->resource);
    char *one = xasprintf("%s/%s", coll, name);
    struct resp r;
    memset(&r, 0, sizeof r);
    sbuf_init(&r.body);
    int rc = -EAGAIN;
    for (int round = 0; round < MAX_RESTARTS && rc == -EAGAIN; round++) {
        if ((rc = request(e, cfg, "GET", one, NULL, &r, err)))
            break;
        if (r.http == 404) {
            const char *body = json_object_to_json_string_ext(o, JFLAGS);
            if ((rc = request(e, cfg, "POST", coll, body, &r, err)))
                break;
            if (r.http == 201 || r.http == 200) {
                *action = "created";
                rc = 0;
            } else if (r.http == 409) {
                rc = -EAGAIN; /* created meanwhile: read it and update it */
            } else {
                rc = api_error(&r, "create", k->what, name, ns, err);
            }
            continue;
        }
        if (r.http != 200) {
            rc = api_error(&r, "get", k->what, name, ns, err);
            break;
        }
        json_object *cur = json_tokener_parse(r.body.data ? r.body.data : "");
        json_object *cmeta = json_object_object_get(cur, "metadata");
        const char *rv = json_object_get_string(json_object_object_get(cmeta, "resourceVersion"));
        const char *owner =
            json_object_get_string(json_object_object_get(json_object_object_get(cmeta, "labels"), "kiln.io/model"));
        if (!rv || !owner || strcmp(owner, model) != 0) {
            rc = kiln_err_set(err, KILN_EINVALID,
                              "%s \"%s\" in namespace \"%s\" exists and does not serve model '%s' (label "
                              "kiln.io/model is %s%s%s): not replaced", k->what, name, ns, model,
                              owner ? "'" : "", owner ? owner : "missing", owner ? "'" : "");
            json_object_put(cur);
            break;
        }
        json_object_object_add(meta, "resourceVersion", json_object_new_string(rv));
        /* A Service's clusterIP is allocated once and immutable: keep it. */
        json_object *cspec = json_object_object_get(cur, "spec"), *spec = json_object_object_get(o, "spec"), *v;
        if (strcmp(k->resource, "services") == 0 && cspec && spec) {
            if (json_object_object_get_ex(cspec, "clusterIP", &v))
                json_object_object_add(spec, "clusterIP", json_object_get(v));
            if (json_object_object_get_ex(cspec, "clusterIPs", &v))
                json_object_object_add(spec, "clusterIPs", json_object_get(v));
        }
        json_object_put(cur);
        const char *body = json_object_to_json_string_ext(o, JFLAGS);
        if ((rc = request(e, cfg, "PUT", one, body, &r, err)))
            break;
        if (r.http == 200 || r.http == 201) {
            *action = "updated";
            rc = 0;
        } else if (r.http == 409 || r.http == 404) {
            rc = -EAGAIN; /* changed or deleted since the GET: start over */
        } else {
            rc = api_error(&r, "update", k->what, name, ns, err);
        }
    }
    if (rc == -EAGAIN)
        rc = api_error(&r, "apply", k->what, name, ns, err);
    json_object_object_del(meta, "resourceVersion");
    sbuf_free(&r.body);
    free(one);
    free(coll);
    return rc;
}

int kapply_apply(const struct kapply_opts *o, json_object **summary, struct kiln_err *err)
{
    *summary = NULL;
    struct kube_config *cfg = NULL;
    int rc = load_config(o, &cfg, err);
    if (rc)
        return rc;
    const char *ns = o->namespace && *o->namespace ? o->namespace : cfg->namespace;
    json_object *d = NULL, *s = NULL;
    CURL *e = NULL;
    if ((rc = kapply_render(o, ns, &d, &s, err)))
        goto out;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || !(e = curl_easy_init())) {
        rc = kiln_err_set(err, KILN_EEXEC, "cannot initialise libcurl");
        goto out;
    }
    static const struct kind dep = { "/apis/apps/v1", "deployments", "deployments.apps" },
                             svc = { "/api/v1", "services", "services" };
    const char *dact = NULL, *sact = NULL;
    /* The Deployment first: a Service without pods is harmless, a refused
     * Deployment must not leave a new Service behind. */
    if ((rc = apply_one(e, cfg, &dep, ns, d, o->name, &dact, err)) ||
        (rc = apply_one(e, cfg, &svc, ns, s, o->name, &sact, err)))
        goto out;
    json_object *sum = obj(), *meta = json_object_object_get(d, "metadata");
    add(sum, "namespace", jstr(ns));
    add(sum, "server", jstr(cfg->server));
    add(sum, "deployment", json_object_get(json_object_object_get(meta, "name")));
    add(sum, "deployment_action", jstr(dact));
    add(sum, "service", json_object_get(json_object_object_get(meta, "name")));
    add(sum, "service_action", jstr(sact));
    add(sum, "image", jstr(o->image));
    add(sum, "version", jint(o->version));
    *summary = sum;
out:
    if (e) {
        curl_easy_cleanup(e);
        curl_global_cleanup();
    }
    json_object_put(d);
    json_object_put(s);
    kube_config_free(cfg);
    return rc;
}
