/* shepherd_proto: the private wire protocol between the local executor
 * (executors/local.c, on the daemon's loop) and the shepherd process
 * (executors/shepherd.c), plus the small helpers both sides share.
 *
 * Transport: one AF_UNIX SOCK_SEQPACKET connection.  Every packet starts with
 * struct shp_pkt; a message is the concatenation of the payloads of one or
 * more packets, the last of which has no SHP_F_MORE flag.  Almost every
 * message fits one packet; only a spawn request with a very large argv or
 * environment is split, so that no message is limited by the socket buffer.
 *
 * A message is struct shp_msg followed by exactly nstr NUL-terminated
 * strings.  Numbers are in host byte order (both ends run on one machine, and
 * the header carries a version byte).
 *
 *   daemon -> shepherd
 *     SPAWN     try_id; v0 = argc, v1 = envc;
 *               str: cwd ("" = "/"), log_path, argv[argc], envp[envc]
 *     KILL      try_id; v0 = grace_ms (<= 0: SIGKILL at once)
 *     QUERY     try_id
 *   shepherd -> daemon
 *     HELLO     v0 = shepherd pid; str: instance id        (sent on accept)
 *     STARTED   try_id; v0 = pid, v1 = start_us             (reply to SPAWN or QUERY)
 *     EXITED    try_id; v0 = exit_code, v1 = term_signal, v2 = start_us,
 *               v3 = end_us, v4 = pid                       (on exit, or reply to QUERY)
 *     FAILED    try_id; v0 = errno, v2 = start_us, v3 = end_us; str: reason
 *               (the command could not be executed; reply to SPAWN or QUERY)
 *     UNKNOWN   try_id                                      (reply to QUERY)
 */
#ifndef KILN_SHEPHERD_PROTO_H
#define KILN_SHEPHERD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define SHP_MAGIC 0x4b53u         /* "SK" */
#define SHP_VERSION 2            /* 2: SPAWN lost its exit path (the journal replaced it) */
#define SHP_F_MORE 0x01
#define SHP_FRAG_MAX 65536u       /* payload bytes per packet */
#define SHP_MSG_MAX (16u << 20)   /* largest reassembled message */
#define SHP_PKT_BUF (SHP_FRAG_MAX + sizeof(struct shp_pkt))

/* Exit status of "kiln shepherd" when another shepherd holds the lock; the
 * caller then just connects to that one. */
#define SHP_EXIT_BUSY 3

struct shp_pkt {
    uint16_t magic;
    uint8_t version;
    uint8_t flags;
};

enum shp_type {
    SHP_HELLO = 1,
    SHP_SPAWN,
    SHP_KILL,
    SHP_QUERY,
    SHP_STARTED,
    SHP_EXITED,
    SHP_FAILED,
    SHP_UNKNOWN,
};

struct shp_msg {
    uint32_t type;
    uint32_t nstr;
    int64_t try_id;
    int64_t v[5];
};

/* A received, validated message: the header (copied, so aligned) and the
 * string area (points into the receive buffer, valid until the next recv). */
struct shp_view {
    struct shp_msg h;
    const char *str;       /* nstr strings, back to back */
    size_t str_len;
};

/* Reassembly state of one connection. */
struct shp_rx {
    struct sbuf partial;
    bool in_partial;
};

void shp_rx_init(struct shp_rx *rx);
void shp_rx_free(struct shp_rx *rx);

/* Receives one packet into buf (SHP_PKT_BUF bytes).  Returns 1 and fills *out
 * when a whole message is there, 0 when a fragment was consumed, -EAGAIN when
 * nothing is ready, -EPIPE at end of stream, -EPROTO on a malformed packet or
 * message, another -errno on a socket error. */
int shp_recv(int fd, struct shp_rx *rx, char *buf, struct shp_view *out);

/* Sends buf[*off..len) as packets; advances *off.  Returns 0 when all was
 * sent, -EAGAIN when the socket is full (call again when writable), or
 * another -errno. */
int shp_send(int fd, const char *buf, size_t len, size_t *off);

/* Encodes a message with nstr strings into a new xmalloc'd buffer. */
char *shp_encode(size_t *len, uint32_t type, int64_t try_id, const int64_t v[5],
                 const char *const *strs, uint32_t nstr);

/* Returns the string after s in the string area (s must be inside it). */
static inline const char *shp_next_str(const char *s)
{
    return s + __builtin_strlen(s) + 1;
}

/* Intrusive hash map from int64 keys to nodes embedded in the caller's
 * records; chained, so removal leaves no tombstones. */
struct shp_map_node {
    struct shp_map_node *next;
    int64_t key;
};

struct shp_map {
    struct shp_map_node **b;
    unsigned bits;
    size_t n;
};

void shp_map_init(struct shp_map *m);
void shp_map_free(struct shp_map *m);        /* frees the bucket array only */
struct shp_map_node *shp_map_get(const struct shp_map *m, int64_t key);
void shp_map_put(struct shp_map *m, struct shp_map_node *node);  /* key must be absent */
struct shp_map_node *shp_map_del(struct shp_map *m, int64_t key);
/* Iteration: for (i = 0; i < ((size_t)1 << m->bits); i++) for (n = m->b[i]; ...) */

/* The journal: HOME/shepherd.journal, one line per ended try, appended by
 * the shepherd (one write() per line, before it reports the end) and read by
 * the local executor when it adopts a try or lost its connection:
 *
 *   TRY_ID EXIT_CODE TERM_SIGNAL START_US END_US PID[ REASON]\n
 *
 * Decimal numbers separated by one space.  PID 0 means the command could not
 * be executed; REASON (newlines replaced by spaces) is then the why.  A line
 * without its newline is still being written, or was torn by a crash, and is
 * not an answer yet.  A shepherd renames a journal over SHP_JOURNAL_MAX bytes
 * to HOME/shepherd.journal.1 when it starts, so readers look there too. */
#define SHP_JOURNAL "shepherd.journal"
#define SHP_JOURNAL_OLD "shepherd.journal.1"
#define SHP_JOURNAL_MAX (INT64_C(64) << 20)
#define SHP_JOURNAL_LINE_MAX 512   /* longest line a shepherd writes, newline included */

struct shp_exit {
    int exit_code, term_signal;
    int64_t start_us, end_us;
    int pid;
    char reason[256];
};

/* Formats the journal line of try_id, newline included, into buf.  Returns
 * its length, or -EOVERFLOW if n is too small. */
int shp_journal_format(char *buf, size_t n, int64_t try_id, const struct shp_exit *e);
/* Parses one line of len bytes, without its newline.  Returns 0, or -EPROTO
 * when it is malformed. */
int shp_journal_parse(const char *line, size_t len, int64_t *try_id, struct shp_exit *e);

#endif
