/* engine_kube: see engine_kube.h. */
#include "engine_kube.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kube_client.h"
#include "kube_config.h"
#include "kube_exec.h"
#include "log.h"
#include "util.h"

#define GPU_POOL "gpu"
#define GPU_POOL_UNKNOWN (1 << 20)

struct engine_kube {
    struct kube_client *client;
    struct executor *ex;
    struct sched *sched;
};

void engine_kube_pools(const struct kiln_settings *cfg, struct sched_pool **out, size_t *n)
{
    struct sched_pool *p = xcalloc(cfg->n_pools + 1, sizeof *p);
    bool have_gpu = false;
    for (size_t i = 0; i < cfg->n_pools; i++) {
        p[i] = cfg->pools[i];
        have_gpu = have_gpu || strcmp(p[i].name, GPU_POOL) == 0;
    }
    *n = cfg->n_pools;
    if (!have_gpu)
        p[(*n)++] = (struct sched_pool){ GPU_POOL,
                                         cfg->kube_gpus >= 0 ? cfg->kube_gpus : GPU_POOL_UNKNOWN };
    *out = p;
}

/* The id that tells this installation's pods from others' in a shared
 * namespace: from the settings, or made once and kept in HOME/instance. */
static char *instance_id(const struct kiln_settings *cfg)
{
    if (cfg->kube_instance)
        return xstrdup(cfg->kube_instance);
    char *path = xasprintf("%s/instance", cfg->home);
    char *data = NULL;
    if (file_read_all(path, &data, NULL) == 0) {
        data[strcspn(data, "\r\n")] = 0;
        if (data[0]) {
            free(path);
            return data;
        }
    }
    free(data);
    unsigned char rnd[5] = { 0 };
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, rnd, sizeof rnd) != (ssize_t)sizeof rnd)
            memset(rnd, 0, sizeof rnd);
        close(fd);
    }
    char *id = xasprintf("kiln-%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3], rnd[4]);
    char *line = xasprintf("%s\n", id);
    if (file_write_atomic(path, line, strlen(line), 0644) < 0)
        LOG_W("cannot write %s: the instance id will change at the next start", path);
    free(line);
    free(path);
    return id;
}

static void on_gpu_capacity(void *arg, int gpus)
{
    struct engine_kube *k = arg;
    sched_set_pool_slots(k->sched, GPU_POOL, gpus);
}

int engine_kube_open(struct engine_kube **out, uv_loop_t *loop, const struct kiln_settings *cfg,
                     struct sched *s, struct kiln_err *err)
{
    *out = NULL;
    const char *kc = cfg->kube_config ? cfg->kube_config : getenv("KUBECONFIG");
    bool in_cluster = (kc && strcmp(kc, "in-cluster") == 0) ||
                      (!kc && getenv("KUBERNETES_SERVICE_HOST"));
    if (!kc && !in_cluster)
        return 0;
    struct kube_config *kcfg = NULL;
    int rc;
    if (in_cluster) {
        rc = kube_config_load_incluster(NULL, &kcfg, err);
    } else {
        /* KUBECONFIG may list several files; the first one is used. */
        char *first = xstrndup(kc, strcspn(kc, ":"));
        rc = kube_config_load_kubeconfig(first, cfg->kube_context, &kcfg, err);
        free(first);
    }
    if (rc < 0) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        snprintf(err->msg, sizeof err->msg, "kubernetes: %.1000s", why);
        return rc;
    }
    struct kube_client_opts co;
    kube_client_opts_default(&co);
    co.create_qps = cfg->kube_create_qps;
    co.create_burst = cfg->kube_create_qps * 2 > 20 ? cfg->kube_create_qps * 2 : 20;
    struct engine_kube *k = xcalloc(1, sizeof *k);
    k->sched = s;
    if ((rc = kube_client_new(loop, kcfg, &co, &k->client, err)) < 0) {
        free(k);
        return rc;
    }
    char *inst = instance_id(cfg);
    struct kube_exec_opts eo;
    kube_exec_opts_default(&eo);
    eo.home = cfg->home;
    eo.instance = inst;
    eo.namespace_ = cfg->kube_namespace;
    eo.pending_timeout_ms = cfg->kube_pending_timeout_ms;
    eo.image_pull_grace_ms = cfg->kube_image_pull_grace_ms;
    eo.keep_failed_ms = cfg->kube_keep_failed_ms;
    eo.gpu_node_selector = cfg->kube_gpu_node_selector;
    eo.gpu_runtime_class = cfg->kube_gpu_runtime_class;
    if (cfg->kube_gpus < 0) {
        eo.gpu_capacity = on_gpu_capacity;
        eo.gpu_capacity_arg = k;
    }
    rc = exec_kube_new(&k->ex, loop, k->client, &eo, err);
    if (rc < 0) {
        /* Not taken by the executor: ours to close. */
        free(inst);
        kube_client_close(k->client);
        free(k);
        return rc;
    }
    LOG_I("kubernetes: API %s, namespace %s, instance %s", kube_client_config(k->client)->server,
          cfg->kube_namespace ? cfg->kube_namespace
          : kube_client_config(k->client)->namespace ? kube_client_config(k->client)->namespace
                                                     : "default", inst);
    free(inst);
    sched_add_executor(s, "kubernetes", k->ex);
    *out = k;
    return 0;
}

static void on_closed(struct executor *ex)
{
    (void)ex;
}

void engine_kube_close(struct engine_kube *k)
{
    if (!k)
        return;
    /* The executor closes its client once its last deletions are done. */
    k->ex->ops->close(k->ex, on_closed);
    free(k);
}
