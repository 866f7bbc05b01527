/* kube_config: where the Kubernetes API is and how to authenticate to it.
 *
 * Two sources: a kubeconfig file (the current context or a named one) and the
 * in-cluster service account (KUBERNETES_SERVICE_HOST/PORT + token, ca.crt,
 * namespace).  The bearer token is asked for per request through
 * kube_config_token(): a token file is re-read when it changes (projected
 * service-account tokens rotate), an exec credential plugin is run (argv, no
 * shell) and its token cached until its expirationTimestamp. */
#ifndef KILN_KUBE_CONFIG_H
#define KILN_KUBE_CONFIG_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>
#include "err.h"

#define KUBE_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

struct kube_blob {
    char *data;     /* decoded bytes (NUL-terminated too), or NULL */
    size_t len;
};

struct kube_config {
    char *server;           /* "https://host:port", no trailing slash */
    char *namespace;        /* context namespace, in-cluster namespace, or "default" */
    char *context;          /* the context used (kubeconfig only) */
    int insecure;           /* insecure-skip-tls-verify */
    char *ca_file;          /* certificate-authority (absolute path) */
    struct kube_blob ca;    /* certificate-authority-data */
    char *cert_file, *key_file;       /* client-certificate / client-key */
    struct kube_blob cert, key;       /* client-certificate-data / client-key-data */
    char *token;            /* static token */
    char *token_file;       /* tokenFile / in-cluster token: re-read when it changes */
    char **exec_argv;       /* exec plugin: command + args, NULL-terminated */
    char **exec_env;        /* "NAME=value", NULL-terminated */
    char *exec_api_version;
    /* caches */
    char *file_token;
    time_t file_mtime;
    long file_mtime_ns;
    off_t file_size;
    char *exec_token;
    time_t exec_expiry;     /* 0: no expiry given (cached for the process lifetime) */
};

/* Parses a kubeconfig.  context NULL: current-context.  Errors name
 * path:line:col.  Relative file paths are taken from the kubeconfig's
 * directory, like kubectl. */
int kube_config_load_kubeconfig(const char *path, const char *context,
                                struct kube_config **out, struct kiln_err *err);
/* In-cluster: KUBERNETES_SERVICE_HOST/_PORT and sa_dir (NULL: KUBE_SA_DIR)
 * holding token, ca.crt and namespace. */
int kube_config_load_incluster(const char *sa_dir, struct kube_config **out,
                               struct kiln_err *err);
/* The bearer token for the next request: *token NULL when the config has none.
 * The string is owned by cfg and valid until the next call. */
int kube_config_token(struct kube_config *cfg, const char **token, struct kiln_err *err);
/* The exec credential plugin in pieces, for a caller that runs it on its own
 * loop (kube_client): the plugin's environment (the daemon's, its env:
 * entries, KUBERNETES_EXEC_INFO; free with kube_config_exec_envp_free), whether a token is due
 * (none yet, or it expires within AHEAD_S seconds of NOW), and the plugin's
 * result taken in (its stdout, or why it gave none).  The plugin gets
 * KUBE_EXEC_TIMEOUT_S seconds; KUBE_EXEC_MAX_OUTPUT bytes of its stdout are
 * read. */
#define KUBE_EXEC_TIMEOUT_S 30
#define KUBE_EXEC_MAX_OUTPUT (1 << 20)
char **kube_config_exec_envp(const struct kube_config *cfg);
void kube_config_exec_envp_free(char **envp);
int kube_config_exec_due(const struct kube_config *cfg, time_t now, int ahead_s);
int kube_config_exec_accept(struct kube_config *cfg, const char *out, size_t len, int timed_out,
                            int exit_status, int term_signal, struct kiln_err *err);
/* Drops a cached exec/file token (after a 401). */
void kube_config_invalidate_token(struct kube_config *cfg);
void kube_config_free(struct kube_config *cfg);

/* Helpers, exported for tests. */
int kube_base64_decode(const char *in, struct kube_blob *out);
int kube_parse_rfc3339(const char *s, time_t *out);

#endif
