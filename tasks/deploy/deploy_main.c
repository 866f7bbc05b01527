/* kiln-deploy: publishes a model into a versioned registry, flips "current"
 * atomically, keeps the last N versions and rolls back.  See
 * docs/model-registry.md.  Links json-c and the kiln-train model code only. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "k8s_apply.h"
#include "ml.h"
#include "registry.h"

#define MAX_VERSIONS 4096
#define JFLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

static void usage(FILE *f)
{
    fputs("usage: kiln-deploy publish  --registry DIR --name NAME --model FILE\n"
          "                            [--metrics JSON|@FILE] [--version N] [--keep N]\n"
          "       kiln-deploy rollback --registry DIR --name NAME [--to VERSION]\n"
          "       kiln-deploy list     --registry DIR --name NAME\n"
          "       kiln-deploy apply    --registry DIR --name NAME [--version N] [KUBERNETES]\n"
          "       kiln-deploy render   --name NAME --version N [--namespace NS] [--image IMG]\n"
          "                            [--claim PVC] [--replicas N]\n"
          "KUBERNETES (publish and rollback with --k8s-apply, and apply):\n"
          "       [--namespace NS] [--image IMG] [--claim PVC] [--replicas N]\n"
          "       [--kubeconfig FILE] [--context NAME]\n"
          "\n"
          "The registry holds DIR/NAME/VERSION/{model.json,meta.json} and DIR/NAME/current,\n"
          "a symlink to the live version, replaced atomically.  publish validates the model,\n"
          "writes the next version (or --version N), makes it current and removes the oldest\n"
          "versions beyond --keep (default 5; never the current one).  rollback makes the\n"
          "version before the current one (or --to VERSION) current.  A JSON summary goes to\n"
          "stdout and to $KILN_OUTPUTS when set.  Exit 0, 1 (failure), 2 (usage).\n"
          "\n"
          "With --k8s-apply, the version is first applied to Kubernetes as the Deployment +\n"
          "Service kiln-serve-NAME running kiln-serve --version N (image --image, default\n"
          KAPPLY_IMAGE ", registry from the PVC --claim, default " KAPPLY_CLAIM ", mounted at\n"
          KAPPLY_MOUNT "); \"current\" changes only when that succeeded.  The cluster: --kubeconfig,\n"
          "$KUBECONFIG, the pod's service account, ~/.kube/config.  apply applies a version\n"
          "(default: current) without changing the registry; render prints the objects as a\n"
          "v1 List without a cluster.  See docs/deploy.md.\n",
          f);
}

static int valid_name(const char *s)
{
    if (!*s || strlen(s) > 128 || s[0] == '.')
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-' || *p == '.'))
            return 0;
    return 1;
}

static int mkdirs(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return -1;
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0755) < 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir(buf, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

static int rmtree_version(const char *dir)
{
    char p[PATH_MAX + 64];
    static const char *const files[] = { "model.json", "meta.json" };
    for (size_t i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        if (unlink(p) < 0 && errno != ENOENT)
            return -1;
    }
    return rmdir(dir);
}

static int emit(json_object *o)
{
    const char *s = json_object_to_json_string_ext(o, JFLAGS);
    printf("%s\n", s);
    const char *op = getenv("KILN_OUTPUTS");
    if (op && *op && json_object_to_file_ext(op, o, JFLAGS) < 0) {
        fprintf(stderr, "kiln-deploy: cannot write %s: %s\n", op, strerror(errno));
        return 1;
    }
    return 0;
}

static int lock_dir(const char *dir)
{
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/.lock", dir);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0 && flock(fd, LOCK_EX) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static json_object *read_metrics(const char *arg, char *err, size_t errlen)
{
    json_object *m = arg[0] == '@' ? json_object_from_file(arg + 1) : json_tokener_parse(arg);
    if (!m || !json_object_is_type(m, json_type_object)) {
        json_object_put(m);
        snprintf(err, errlen, "--metrics: not a JSON object: %s", arg);
        return NULL;
    }
    return m;
}

static int copy_file(const char *from, const char *to, char *err, size_t errlen)
{
    FILE *in = fopen(from, "rb"), *out = NULL;
    if (!in) {
        snprintf(err, errlen, "%s: %s", from, strerror(errno));
        return -1;
    }
    if (!(out = fopen(to, "wb"))) {
        snprintf(err, errlen, "%s: %s", to, strerror(errno));
        fclose(in);
        return -1;
    }
    char buf[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) {
            rc = -1;
            break;
        }
    if (ferror(in))
        rc = -1;
    if (fflush(out) != 0 || fsync(fileno(out)) != 0)
        rc = -1;
    if (fclose(out) != 0)
        rc = -1;
    fclose(in);
    if (rc < 0)
        snprintf(err, errlen, "copy %s -> %s: %s", from, to, strerror(errno));
    return rc;
}

static uint64_t file_checksum(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint64_t h = 0xcbf29ce484222325ULL;
    if (!f)
        return h;
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        h = ml_fnv1a64(buf, n, h);
    fclose(f);
    return h;
}

static int prune(const char *dir, long keep, long current, json_object *removed)
{
    long v[MAX_VERSIONS];
    int n = reg_versions(dir, v, MAX_VERSIONS);
    if (n < 0 || n > MAX_VERSIONS)
        return -1;
    int excess = n - (int)keep;
    for (int i = 0; i < n && excess > 0; i++) {
        if (v[i] == current)
            continue;
        char p[PATH_MAX + 64];
        snprintf(p, sizeof p, "%s/%ld", dir, v[i]);
        if (rmtree_version(p) < 0) {
            fprintf(stderr, "kiln-deploy: cannot remove %s: %s\n", p, strerror(errno));
            return -1;
        }
        json_object_array_add(removed, json_object_new_int64(v[i]));
        excess--;
    }
    return 0;
}

/* Applies version to the cluster; adds "kubernetes" to out.  0 or 1. */
static int k8s_apply(struct kapply_opts *k, long version, json_object *out)
{
    struct kiln_err err = { 0 };
    json_object *sum = NULL;
    k->version = version;
    if (kapply_apply(k, &sum, &err) < 0) {
        fprintf(stderr, "kiln-deploy: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr, "kiln-deploy: %s version %ld: deployment %s %s in namespace %s\n", k->name, version,
            json_object_get_string(json_object_object_get(sum, "deployment")),
            json_object_get_string(json_object_object_get(sum, "deployment_action")),
            json_object_get_string(json_object_object_get(sum, "namespace")));
    json_object_object_add(out, "kubernetes", sum);
    return 0;
}

static int publish(const char *dir, const char *name, const char *model, const char *metrics,
                   long version, long keep, struct kapply_opts *k8s)
{
    char err[2 * PATH_MAX + 128] = "";
    ml_model m;
    if (ml_model_load(model, &m, err, sizeof err) < 0) {
        fprintf(stderr, "kiln-deploy: %s\n", err);
        return 1;
    }
    json_object *mj = NULL;
    if (metrics && !(mj = read_metrics(metrics, err, sizeof err))) {
        ml_model_free(&m);
        fprintf(stderr, "kiln-deploy: %s\n", err);
        return 2;
    }
    if (!mj)
        mj = m.metrics ? json_object_get(m.metrics) : json_object_new_object();
    if (mkdirs(dir) < 0) {
        fprintf(stderr, "kiln-deploy: cannot create %s: %s\n", dir, strerror(errno));
        ml_model_free(&m);
        json_object_put(mj);
        return 1;
    }
    int lock = lock_dir(dir), rc = 1;
    long v[MAX_VERSIONS];
    int n = reg_versions(dir, v, MAX_VERSIONS);
    long previous = reg_current(dir);
    char tmp[PATH_MAX + 64], final[PATH_MAX + 64], p[PATH_MAX + 128];
    json_object *meta = NULL, *out = NULL;
    tmp[0] = '\0';
    if (lock < 0 || n < 0 || n > MAX_VERSIONS) {
        fprintf(stderr, "kiln-deploy: cannot read the registry %s: %s\n", dir, strerror(errno));
        goto done;
    }
    if (version <= 0)
        version = n > 0 ? v[n - 1] + 1 : 1;
    for (int i = 0; i < n; i++)
        if (v[i] == version) {
            fprintf(stderr, "kiln-deploy: %s version %ld exists already\n", name, version);
            rc = 2;
            goto done;
        }
    snprintf(tmp, sizeof tmp, "%s/.tmp-%ld-%ld", dir, version, (long)getpid());
    snprintf(final, sizeof final, "%s/%ld", dir, version);
    rmtree_version(tmp);
    if (mkdir(tmp, 0755) < 0) {
        fprintf(stderr, "kiln-deploy: mkdir %s: %s\n", tmp, strerror(errno));
        tmp[0] = '\0';
        goto done;
    }
    snprintf(p, sizeof p, "%s/model.json", tmp);
    if (copy_file(model, p, err, sizeof err) < 0) {
        fprintf(stderr, "kiln-deploy: %s\n", err);
        goto done;
    }
    char when[32], sum[40];
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    snprintf(sum, sizeof sum, "fnv1a64:%016llx", (unsigned long long)file_checksum(p));
    char src[PATH_MAX];
    meta = json_object_new_object();
    json_object_object_add(meta, "name", json_object_new_string(name));
    json_object_object_add(meta, "version", json_object_new_int64(version));
    json_object_object_add(meta, "created", json_object_new_string(when));
    json_object_object_add(meta, "source", json_object_new_string(realpath(model, src) ? src : model));
    json_object_object_add(meta, "checksum", json_object_new_string(sum));
    json_object_object_add(meta, "kind", json_object_new_string(m.kind == ML_LOGISTIC ? "logistic" : "linear"));
    json_object_object_add(meta, "features", json_object_new_int64((int64_t)m.d));
    json_object_object_add(meta, "metrics", json_object_get(mj));
    const char *run = getenv("KILN_RUN_ID");
    if (run && *run)
        json_object_object_add(meta, "run_id", json_object_new_string(run));
    snprintf(p, sizeof p, "%s/meta.json", tmp);
    if (json_object_to_file_ext(p, meta, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                             JSON_C_TO_STRING_NOSLASHESCAPE) < 0) {
        fprintf(stderr, "kiln-deploy: cannot write %s\n", p);
        goto done;
    }
    if (rename(tmp, final) < 0) {
        fprintf(stderr, "kiln-deploy: rename %s -> %s: %s\n", tmp, final, strerror(errno));
        goto done;
    }
    tmp[0] = '\0';
    json_object *kube = json_object_new_object();
    /* The cluster first: when it refuses the new version, the registry is
     * left as it was (the new folder removed, "current" unchanged). */
    if (k8s && k8s_apply(k8s, version, kube) != 0) {
        json_object_put(kube);
        if (rmtree_version(final) < 0)
            fprintf(stderr, "kiln-deploy: cannot remove %s: %s\n", final, strerror(errno));
        goto done;
    }
    if (reg_set_current(dir, version, err, sizeof err) < 0) {
        fprintf(stderr, "kiln-deploy: %s\n", err);
        json_object_put(kube);
        goto done;
    }
    fprintf(stderr, "kiln-deploy: %s version %ld is current (was %ld)\n", name, version,
            previous > 0 ? previous : 0);
    json_object *removed = json_object_new_array();
    out = json_object_new_object();
    json_object_object_add(out, "name", json_object_new_string(name));
    json_object_object_add(out, "version", json_object_new_int64(version));
    json_object_object_add(out, "previous", previous > 0 ? json_object_new_int64(previous) : NULL);
    json_object_object_add(out, "path", json_object_new_string(final));
    json_object_object_add(out, "dir", json_object_new_string(dir));
    json_object_object_add(out, "checksum", json_object_new_string(sum));
    json_object_object_add(out, "removed", removed);
    json_object *ks = NULL;
    if (json_object_object_get_ex(kube, "kubernetes", &ks))
        json_object_object_add(out, "kubernetes", json_object_get(ks));
    json_object_put(kube);
    if (prune(dir, keep, version, removed) < 0)
        goto done;
    rc = emit(out);
done:
    if (tmp[0])
        rmtree_version(tmp);
    if (lock >= 0)
        close(lock);
    json_object_put(out);
    json_object_put(meta);
    json_object_put(mj);
    ml_model_free(&m);
    return rc;
}

static int rollback(const char *dir, const char *name, long to, struct kapply_opts *k8s)
{
    int lock = lock_dir(dir), rc = 1;
    long v[MAX_VERSIONS];
    int n = lock < 0 ? -1 : reg_versions(dir, v, MAX_VERSIONS);
    long cur = reg_current(dir);
    if (n <= 0 || n > MAX_VERSIONS) {
        fprintf(stderr, "kiln-deploy: %s has no versions in %s\n", name, dir);
        goto done;
    }
    if (to <= 0) {
        for (int i = n - 1; i >= 0; i--)
            if (cur > 0 && v[i] < cur) {
                to = v[i];
                break;
            }
        if (to <= 0) {
            fprintf(stderr, "kiln-deploy: %s: no version before %ld to roll back to\n", name, cur);
            goto done;
        }
    } else {
        int found = 0;
        for (int i = 0; i < n; i++)
            found |= v[i] == to;
        if (!found) {
            fprintf(stderr, "kiln-deploy: %s has no version %ld\n", name, to);
            rc = 2;
            goto done;
        }
    }
    char err[2 * PATH_MAX + 128];
    json_object *kube = json_object_new_object(), *ks = NULL;
    /* The previous version's Deployment is applied again before "current"
     * moves, so a refused apply changes nothing. */
    if (k8s && k8s_apply(k8s, to, kube) != 0) {
        json_object_put(kube);
        goto done;
    }
    if (reg_set_current(dir, to, err, sizeof err) < 0) {
        fprintf(stderr, "kiln-deploy: %s\n", err);
        json_object_put(kube);
        goto done;
    }
    json_object *out = json_object_new_object();
    fprintf(stderr, "kiln-deploy: %s rolled back to version %ld (was %ld)\n", name, to, cur);
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/%ld", dir, to);
    json_object_object_add(out, "name", json_object_new_string(name));
    json_object_object_add(out, "version", json_object_new_int64(to));
    json_object_object_add(out, "previous", cur > 0 ? json_object_new_int64(cur) : NULL);
    json_object_object_add(out, "path", json_object_new_string(p));
    json_object_object_add(out, "dir", json_object_new_string(dir));
    if (json_object_object_get_ex(kube, "kubernetes", &ks))
        json_object_object_add(out, "kubernetes", json_object_get(ks));
    json_object_put(kube);
    rc = emit(out);
    json_object_put(out);
done:
    if (lock >= 0)
        close(lock);
    return rc;
}

static int list(const char *dir, const char *name)
{
    long v[MAX_VERSIONS];
    int n = reg_versions(dir, v, MAX_VERSIONS);
    if (n < 0 || n > MAX_VERSIONS) {
        fprintf(stderr, "kiln-deploy: cannot read %s: %s\n", dir, strerror(errno));
        return 1;
    }
    long cur = reg_current(dir);
    json_object *out = json_object_new_object(), *arr = json_object_new_array();
    json_object_object_add(out, "name", json_object_new_string(name));
    json_object_object_add(out, "current", cur > 0 ? json_object_new_int64(cur) : NULL);
    for (int i = 0; i < n; i++) {
        char p[PATH_MAX + 64];
        snprintf(p, sizeof p, "%s/%ld/meta.json", dir, v[i]);
        json_object *meta = json_object_from_file(p);
        if (!meta) {
            meta = json_object_new_object();
            json_object_object_add(meta, "version", json_object_new_int64(v[i]));
        }
        json_object_array_add(arr, meta);
    }
    json_object_object_add(out, "versions", arr);
    int rc = emit(out);
    json_object_put(out);
    return rc;
}

/* apply: a version (default current) to the cluster, the registry untouched. */
static int apply_version(const char *dir, const char *name, long version, struct kapply_opts *k8s)
{
    if (version <= 0 && (version = reg_current(dir)) <= 0) {
        fprintf(stderr, "kiln-deploy: %s has no current version in %s\n", name, dir);
        return 1;
    }
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/%ld/model.json", dir, version);
    if (access(p, R_OK) != 0) {
        fprintf(stderr, "kiln-deploy: %s has no version %ld (%s: %s)\n", name, version, p, strerror(errno));
        return 2;
    }
    json_object *out = json_object_new_object(), *kube = json_object_new_object(), *ks = NULL;
    int rc = k8s_apply(k8s, version, kube);
    if (rc == 0) {
        json_object_object_add(out, "name", json_object_new_string(name));
        json_object_object_add(out, "version", json_object_new_int64(version));
        if (json_object_object_get_ex(kube, "kubernetes", &ks))
            json_object_object_add(out, "kubernetes", json_object_get(ks));
        rc = emit(out);
    }
    json_object_put(kube);
    json_object_put(out);
    return rc;
}

/* render: the objects as a v1 List, for kubectl or a review. */
static int render(struct kapply_opts *k8s)
{
    struct kiln_err err = { 0 };
    json_object *d, *s;
    if (kapply_render(k8s, k8s->namespace ? k8s->namespace : "default", &d, &s, &err) < 0) {
        fprintf(stderr, "kiln-deploy: %s\n", err.msg);
        return 2;
    }
    json_object *list = json_object_new_object(), *items = json_object_new_array();
    json_object_object_add(list, "apiVersion", json_object_new_string("v1"));
    json_object_object_add(list, "kind", json_object_new_string("List"));
    json_object_array_add(items, d);
    json_object_array_add(items, s);
    json_object_object_add(list, "items", items);
    printf("%s\n", json_object_to_json_string_ext(list, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                           JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(list);
    return 0;
}

static long parse_pos(const char *opt, const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v <= 0) {
        fprintf(stderr, "kiln-deploy: %s wants a positive integer, not '%s'\n", opt, s);
        return -1;
    }
    return v;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1], *registry = NULL, *name = NULL, *model = NULL, *metrics = NULL;
    long version = 0, keep = 5, to = 0, replicas = 1;
    int k8s = 0;
    struct kapply_opts ko;
    kapply_opts_default(&ko);
    static const struct option opts[] = {
        { "k8s-apply", no_argument, NULL, 'K' },      { "namespace", required_argument, NULL, 'N' },
        { "image", required_argument, NULL, 'i' },    { "claim", required_argument, NULL, 'c' },
        { "kubeconfig", required_argument, NULL, 'C' }, { "context", required_argument, NULL, 'x' },
        { "replicas", required_argument, NULL, 'R' },
        { "registry", required_argument, NULL, 'r' }, { "name", required_argument, NULL, 'n' },
        { "model", required_argument, NULL, 'm' },    { "metrics", required_argument, NULL, 'M' },
        { "version", required_argument, NULL, 'v' },  { "keep", required_argument, NULL, 'k' },
        { "to", required_argument, NULL, 't' },       { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': registry = optarg; break;
        case 'n': name = optarg; break;
        case 'm': model = optarg; break;
        case 'M': metrics = optarg; break;
        case 'v': if ((version = parse_pos("--version", optarg)) < 0) return 2; break;
        case 'k': if ((keep = parse_pos("--keep", optarg)) < 0) return 2; break;
        case 't': if ((to = parse_pos("--to", optarg)) < 0) return 2; break;
        case 'K': k8s = 1; break;
        case 'N': ko.namespace = optarg; break;
        case 'i': ko.image = optarg; break;
        case 'c': ko.claim = optarg; break;
        case 'C': ko.kubeconfig = optarg; break;
        case 'x': ko.context = optarg; break;
        case 'R': if ((replicas = parse_pos("--replicas", optarg)) < 0 || replicas > 1000) return 2; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    ko.name = name;
    ko.replicas = (int)replicas;
    if (strcmp(cmd, "render") == 0) {
        if (optind < argc || !name || version <= 0) {
            fprintf(stderr, "kiln-deploy render: --name and --version are required\n");
            return 2;
        }
        ko.version = version;
        return render(&ko);
    }
    if (optind < argc || !registry || !name) {
        fprintf(stderr, "kiln-deploy: %s\n", optind < argc ? "unexpected argument"
                                                           : "--registry and --name are required");
        return 2;
    }
    if (!valid_name(name)) {
        fprintf(stderr, "kiln-deploy: bad model name '%s' (letters, digits, . _ -)\n", name);
        return 2;
    }
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s/%s", registry, name) >= (int)sizeof dir) {
        fprintf(stderr, "kiln-deploy: path too long\n");
        return 2;
    }
    if (strcmp(cmd, "publish") == 0) {
        if (!model) {
            fprintf(stderr, "kiln-deploy publish: --model is required\n");
            return 2;
        }
        return publish(dir, name, model, metrics, version, keep, k8s ? &ko : NULL);
    }
    if (strcmp(cmd, "rollback") == 0)
        return rollback(dir, name, to, k8s ? &ko : NULL);
    if (strcmp(cmd, "apply") == 0)
        return apply_version(dir, name, version, &ko);
    if (strcmp(cmd, "list") == 0)
        return list(dir, name);
    fprintf(stderr, "kiln-deploy: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
