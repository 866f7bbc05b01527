/* reads: the API's reads, answered off the daemon's loop.
 *
 * A small pool of reader threads, each with its own read-only connection to
 * the database (WAL: readers never block the scheduler's writes), builds
 * read answers; the loop only hands the finished bytes to h2o.  Answers that
 * follow from the database alone are kept, keyed by path, query and Range,
 * together with the generation they were read at (the loop connection's
 * commits and SQLite's data_version): a request is answered from the kept
 * answer while the generation has not moved, joins the computation under way
 * when that one started at its generation or later, and otherwise waits for
 * the next one, so N clients asking the same thing cost one read per change
 * and at most one read per key runs at a time.  A read started after a
 * commit sees it, so a GET after a POST's answer sees the POST's change.
 *
 * Every answer has an ETag (a hash of its bytes); a matching If-None-Match
 * gets 304.  A client that goes away while its read runs is forgotten: the
 * read finishes for the cache.  All calls are on the loop thread. */
#ifndef KILN_READS_H
#define KILN_READS_H

#include <stdint.h>

#include <h2o.h>
#include <uv.h>

#include "api.h"
#include "err.h"

struct engine;
struct reads;

/* Opens nthreads connections to db_path and starts the threads. */
int reads_new(struct reads **out, uv_loop_t *loop, struct engine *e, const char *db_path,
              int nthreads, struct kiln_err *err);
/* Answers the GET rq (its strings are copied) for req, now or later. */
void reads_handle(struct reads *r, h2o_req_t *req, const struct api_request *rq);
struct reads_stats {
    uint64_t computed;      /* reads run on a reader thread */
    uint64_t kept;          /* requests answered from a kept answer */
    uint64_t not_modified;  /* 304s */
};
void reads_stats(const struct reads *r, struct reads_stats *out);
/* Refuses nothing, but lets the loop end once the reads under way are done. */
void reads_stop(struct reads *r);
/* After the loop ended: joins the threads and frees everything. */
void reads_free(struct reads *r);

#endif
