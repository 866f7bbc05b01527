/* cron: parsing, time zones (TZif), next fire times.  See cron.h for the
 * syntax and the daylight-saving rules. */
#include "cron.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* ---- calendar arithmetic (proleptic Gregorian, days since 1970-01-01) ---- */

#define SECS_PER_DAY 86400
/* Sentinels for "no transition before / after": far outside years 1..9999,
 * far inside int64 so that adding an offset never overflows. */
#define T_MIN (-(INT64_C(1) << 60))
#define T_MAX (INT64_C(1) << 60)
/* 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z */
#define S_FIRST INT64_C(-62135596800)
#define S_LAST INT64_C(253402300799)

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
    static const int dim[13] = { 0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    return m == 2 && is_leap(y) ? 29 : dim[m];
}

/* Howard Hinnant's days_from_civil / civil_from_days. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* 0 = Sunday. */
static int weekday(int64_t days)
{
    return (int)(((days + 4) % 7 + 7) % 7);
}

/* ---- time zones ---------------------------------------------------------- */

/* A POSIX TZ rule date: Jn (1-365, no Feb 29), n (0-365), or Mm.w.d. */
struct tz_date {
    char kind; /* 'J', 'n', 'M' */
    int a, b, c;
    int32_t secs; /* time of day of the change, local time before it */
};

struct tz_rule {
    int32_t std_off, dst_off; /* seconds east of UTC */
    bool has_dst;
    struct tz_date start, end;
};

struct tz_zone {
    char *name;
    size_t n;          /* transitions that change the offset */
    int64_t *trans;    /* instants, ascending */
    int32_t *offs;     /* offset from trans[i] on */
    int32_t init_off;  /* offset before trans[0] */
    bool has_rule;     /* footer rule for instants after the last transition */
    struct tz_rule rule;
};

/* A stretch of time with one UTC offset: [start, end).  prev_off is the
 * offset just before start (equal to off when start is not a real change). */
struct seg {
    int64_t start, end;
    int32_t off, prev_off;
};

static int64_t rule_date_instant(const struct tz_date *dt, int64_t year, int32_t off_before)
{
    int64_t jan1 = days_from_civil(year, 1, 1);
    int64_t day;
    switch (dt->kind) {
    case 'J': /* 1..365, Feb 29 never counted */
        day = jan1 + dt->a - 1 + (is_leap(year) && dt->a >= 60);
        break;
    case 'n':
        day = jan1 + dt->a;
        break;
    default: { /* M month . week . weekday */
        int64_t first = days_from_civil(year, dt->a, 1);
        int delta = (dt->c - weekday(first) + 7) % 7;
        int64_t d = first + delta + 7 * (dt->b - 1);
        int dim = days_in_month(year, dt->a);
        while (d >= first + dim)
            d -= 7;
        day = d;
        break;
    }
    }
    return day * SECS_PER_DAY + dt->secs - off_before;
}

struct change {
    int64_t t;
    int32_t off;
};

/* The rule's stretch around t. */
static void rule_seg(const struct tz_rule *r, int64_t t, struct seg *g)
{
    if (!r->has_dst || r->dst_off == r->std_off) {
        *g = (struct seg){ T_MIN, T_MAX, r->std_off, r->std_off };
        return;
    }
    int64_t y;
    int m, d;
    civil_from_days(floor_div(t, SECS_PER_DAY), &y, &m, &d);
    struct change ch[6];
    int n = 0;
    for (int64_t yy = y - 1; yy <= y + 1; yy++) {
        struct change s = { rule_date_instant(&r->start, yy, r->std_off), r->dst_off };
        struct change e = { rule_date_instant(&r->end, yy, r->dst_off), r->std_off };
        /* chronological within the year; ties keep the rule's order */
        if (e.t < s.t) {
            ch[n++] = e;
            ch[n++] = s;
        } else {
            ch[n++] = s;
            ch[n++] = e;
        }
    }
    /* stable insertion sort across years (years barely overlap, if at all) */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && ch[j - 1].t > ch[j].t; j--) {
            struct change tmp = ch[j];
            ch[j] = ch[j - 1];
            ch[j - 1] = tmp;
        }
    /* Real changes only: collapse equal instants (the last one wins), drop
     * those that do not change the offset. */
    struct change real[6];
    int32_t before[6];
    int nr = 0;
    int32_t cur = ch[0].off == r->dst_off ? r->std_off : r->dst_off;
    int32_t first_off = cur;
    for (int i = 0; i < n; i++) {
        if (nr > 0 && real[nr - 1].t == ch[i].t) {
            real[nr - 1].off = ch[i].off;
            cur = ch[i].off;
            if (real[nr - 1].off == before[nr - 1]) {
                nr--;
            }
            continue;
        }
        if (ch[i].off == cur)
            continue;
        before[nr] = cur;
        real[nr++] = ch[i];
        cur = ch[i].off;
    }
    int i = -1;
    for (int k = 0; k < nr; k++)
        if (real[k].t <= t)
            i = k;
    if (i < 0) {
        int32_t off = nr > 0 ? before[0] : first_off;
        *g = (struct seg){ T_MIN, nr > 0 ? real[0].t : T_MAX, off, off };
        return;
    }
    g->start = real[i].t;
    g->off = real[i].off;
    g->prev_off = before[i];
    g->end = i + 1 < nr ? real[i + 1].t : T_MAX;
}

static void zone_seg(const struct tz_zone *z, int64_t t, struct seg *g)
{
    size_t n = z->n;
    if (z->has_rule && (n == 0 || t >= z->trans[n - 1])) {
        rule_seg(&z->rule, t, g);
        if (n > 0 && g->start <= z->trans[n - 1]) {
            g->start = z->trans[n - 1];
            g->prev_off = n > 1 ? z->offs[n - 2] : z->init_off;
        }
        return;
    }
    if (n == 0 || t < z->trans[0]) {
        *g = (struct seg){ T_MIN, n ? z->trans[0] : T_MAX, z->init_off, z->init_off };
        return;
    }
    size_t lo = 0, hi = n; /* largest i with trans[i] <= t */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->trans[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    g->start = z->trans[lo];
    g->off = z->offs[lo];
    g->prev_off = lo ? z->offs[lo - 1] : z->init_off;
    g->end = lo + 1 < n ? z->trans[lo + 1] : T_MAX;
}

static int32_t zone_offset(const struct tz_zone *z, int64_t t)
{
    struct seg g;
    zone_seg(z, t, &g);
    return g.off;
}

/* POSIX TZ string (the TZif footer): std offset [dst [offset] [,start[/time],end[/time]]] */
static const char *tzs_name(const char *p)
{
    if (*p == '<') {
        const char *q = strchr(p, '>');
        return q && q - p >= 4 ? q + 1 : NULL;
    }
    const char *q = p;
    while (isalpha((unsigned char)*q))
        q++;
    return q - p >= 3 ? q : NULL;
}

/* [+-]hh[:mm[:ss]] with hh up to max_h; returns seconds. */
static const char *tzs_hms(const char *p, int max_h, int32_t *out)
{
    int sign = 1;
    if (*p == '+' || *p == '-')
        sign = *p++ == '-' ? -1 : 1;
    if (!isdigit((unsigned char)*p))
        return NULL;
    int v[3] = { 0, 0, 0 };
    for (int k = 0; k < 3; k++) {
        if (k > 0) {
            if (*p != ':')
                break;
            p++;
        }
        if (!isdigit((unsigned char)*p))
            return NULL;
        int x = 0, nd = 0;
        while (isdigit((unsigned char)*p) && nd < 3) {
            x = x * 10 + (*p++ - '0');
            nd++;
        }
        v[k] = x;
    }
    if (v[0] > max_h || v[1] > 59 || v[2] > 59)
        return NULL;
    *out = sign * (v[0] * 3600 + v[1] * 60 + v[2]);
    return p;
}

static const char *tzs_num(const char *p, int lo, int hi, int *out)
{
    if (!isdigit((unsigned char)*p))
        return NULL;
    int x = 0;
    while (isdigit((unsigned char)*p)) {
        x = x * 10 + (*p++ - '0');
        if (x > hi)
            return NULL;
    }
    if (x < lo)
        return NULL;
    *out = x;
    return p;
}

static const char *tzs_date(const char *p, struct tz_date *d)
{
    memset(d, 0, sizeof *d);
    if (*p == 'J') {
        d->kind = 'J';
        p = tzs_num(p + 1, 1, 365, &d->a);
    } else if (*p == 'M') {
        d->kind = 'M';
        p = tzs_num(p + 1, 1, 12, &d->a);
        if (p && *p++ == '.')
            p = tzs_num(p, 1, 5, &d->b);
        else
            p = NULL;
        if (p && *p++ == '.')
            p = tzs_num(p, 0, 6, &d->c);
        else
            p = NULL;
    } else {
        d->kind = 'n';
        p = tzs_num(p, 0, 365, &d->a);
    }
    if (!p)
        return NULL;
    d->secs = 7200;
    if (*p == '/')
        p = tzs_hms(p + 1, 167, &d->secs);
    return p;
}

static bool tzs_parse(const char *s, struct tz_rule *r)
{
    memset(r, 0, sizeof *r);
    const char *p = tzs_name(s);
    int32_t o;
    if (!p || !(p = tzs_hms(p, 24, &o)))
        return false;
    r->std_off = -o;
    if (*p == '\0')
        return true;
    if (!(p = tzs_name(p)))
        return false;
    r->has_dst = true;
    r->dst_off = r->std_off + 3600;
    if (*p && *p != ',') {
        if (!(p = tzs_hms(p, 24, &o)))
            return false;
        r->dst_off = -o;
    }
    if (*p == '\0') { /* no rule: the US rule, as glibc does */
        r->start = (struct tz_date){ 'M', 3, 2, 0, 7200 };
        r->end = (struct tz_date){ 'M', 11, 1, 0, 7200 };
        return true;
    }
    if (*p++ != ',' || !(p = tzs_date(p, &r->start)) || *p++ != ',' ||
        !(p = tzs_date(p, &r->end)))
        return false;
    return *p == '\0';
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

#define OFF_LIMIT 100000 /* |UTC offset| in seconds; real ones stay under 26 h */

static int tzif_parse(struct tz_zone *z, const unsigned char *buf, size_t len, const char *path,
                      struct kiln_err *err)
{
#define BAD(why) kiln_err_set(err, KILN_EINVALID, "cron: time zone file %s: %s", path, why)
    if (len < 44 || memcmp(buf, "TZif", 4) != 0)
        return BAD("not a TZif file");
    int version = buf[4] ? buf[4] - '0' : 1;
    const unsigned char *h = buf;
    int tsize = 4;
    size_t pos = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (pos + 44 > len || memcmp(buf + pos, "TZif", 4) != 0)
            return BAD("truncated header");
        h = buf + pos;
        uint32_t isut = be32(h + 20), isstd = be32(h + 24), leap = be32(h + 28),
                 timecnt = be32(h + 32), typecnt = be32(h + 36), charcnt = be32(h + 40);
        if (timecnt > 100000 || typecnt > 256 || charcnt > 100000 || leap > 100000 ||
            isut > 256 || isstd > 256)
            return BAD("implausible counts");
        size_t body = (size_t)timecnt * (size_t)tsize + timecnt + (size_t)typecnt * 6 + charcnt +
                      (size_t)leap * (size_t)(tsize + 4) + isstd + isut;
        if (pass == 0 && version >= 2) {
            pos += 44 + body;
            tsize = 8;
            continue;
        }
        if (pos + 44 + body > len)
            return BAD("truncated data");
        if (typecnt == 0)
            return BAD("no local time types");
        if (leap)
            return BAD("leap-second zones (right/...) are not supported");
        const unsigned char *tp = h + 44;
        const unsigned char *ip = tp + (size_t)timecnt * (size_t)tsize;
        const unsigned char *ty = ip + timecnt;
        int32_t offs[256];
        for (uint32_t k = 0; k < typecnt; k++) {
            offs[k] = (int32_t)be32(ty + 6 * k);
            if (offs[k] < -OFF_LIMIT || offs[k] > OFF_LIMIT)
                return BAD("implausible UTC offset");
        }
        z->init_off = offs[0];
        z->trans = xcalloc(timecnt ? timecnt : 1, sizeof *z->trans);
        z->offs = xcalloc(timecnt ? timecnt : 1, sizeof *z->offs);
        z->n = 0;
        int32_t cur = z->init_off;
        int64_t last = T_MIN;
        for (uint32_t k = 0; k < timecnt; k++) {
            int64_t t = tsize == 8 ? be64(tp + 8 * k) : (int64_t)(int32_t)be32(tp + 4 * k);
            if (ip[k] >= typecnt)
                return BAD("transition to an unknown type");
            if (t <= last && k > 0)
                return BAD("transitions out of order");
            last = t;
            if (t <= T_MIN || t >= T_MAX)
                continue;
            int32_t off = offs[ip[k]];
            if (off == cur)
                continue; /* only the abbreviation or isdst changed */
            z->trans[z->n] = t;
            z->offs[z->n++] = off;
            cur = off;
        }
        pos += 44 + body;
        break;
    }
    if (version >= 2 && pos < len && buf[pos] == '\n') {
        const char *f = (const char *)buf + pos + 1;
        const char *nl = memchr(f, '\n', len - pos - 1);
        if (!nl)
            return BAD("unterminated footer");
        if (nl > f) {
            char tzs[256];
            size_t fl = (size_t)(nl - f);
            if (fl >= sizeof tzs)
                return BAD("footer too long");
            memcpy(tzs, f, fl);
            tzs[fl] = '\0';
            if (!tzs_parse(tzs, &z->rule))
                return BAD("cannot parse the footer TZ rule");
            if (z->rule.std_off < -OFF_LIMIT || z->rule.std_off > OFF_LIMIT ||
                z->rule.dst_off < -OFF_LIMIT || z->rule.dst_off > OFF_LIMIT)
                return BAD("implausible UTC offset in the footer");
            z->has_rule = true;
        }
    }
    return 0;
#undef BAD
}

static void zone_free(struct tz_zone *z)
{
    if (!z)
        return;
    free(z->name);
    free(z->trans);
    free(z->offs);
    free(z);
}

static bool tz_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 200 || s[0] == '/' || s[0] == '-')
        return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("/_+-.", *p))
            return false;
    /* no "." or ".." path component, no empty component */
    for (const char *p = s; *p;) {
        const char *q = strchr(p, '/');
        size_t l = q ? (size_t)(q - p) : strlen(p);
        if (l == 0 || (l == 1 && p[0] == '.') || (l == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        if (!q)
            break;
        p = q + 1;
        if (!*p)
            return false;
    }
    return true;
}

static struct tz_zone utc_zone = { .name = (char *)"UTC" };

/* Loaded zones live until the process ends; lookups share them. */
static pthread_mutex_t zones_mu = PTHREAD_MUTEX_INITIALIZER;
static struct tz_zone **zones;
static size_t nzones, capzones;

static int zone_get(const char *name, const struct tz_zone **out, struct kiln_err *err)
{
    if (!name || !*name || strcmp(name, "UTC") == 0) {
        *out = &utc_zone;
        return 0;
    }
    if (!tz_name_valid(name))
        return kiln_err_set(err, KILN_EINVALID, "cron: invalid time zone name '%s'", name);
    pthread_mutex_lock(&zones_mu);
    for (size_t i = 0; i < nzones; i++)
        if (strcmp(zones[i]->name, name) == 0) {
            *out = zones[i];
            pthread_mutex_unlock(&zones_mu);
            return 0;
        }
    pthread_mutex_unlock(&zones_mu);

    const char *dir = getenv("TZDIR");
    if (!dir || !*dir)
        dir = "/usr/share/zoneinfo";
    char *path = xasprintf("%s/%s", dir, name);
    char *data = NULL;
    size_t len = 0;
    int rc = file_read_all(path, &data, &len);
    if (rc < 0) {
        if (rc == -ENOENT || rc == -EISDIR || rc == -ENOTDIR)
            kiln_err_set(err, KILN_EINVALID, "cron: unknown time zone '%s' (no file %s)", name,
                         path);
        else
            kiln_err_set(err, KILN_EINVALID, "cron: time zone '%s': cannot read %s: %s", name,
                         path, strerror(-rc));
        free(path);
        return KILN_EINVALID;
    }
    struct tz_zone *z = xcalloc(1, sizeof *z);
    z->name = xstrdup(name);
    rc = tzif_parse(z, (const unsigned char *)data, len, path, err);
    free(data);
    free(path);
    if (rc < 0) {
        zone_free(z);
        return rc;
    }
    pthread_mutex_lock(&zones_mu);
    for (size_t i = 0; i < nzones; i++) /* another thread may have won */
        if (strcmp(zones[i]->name, name) == 0) {
            zone_free(z);
            *out = zones[i];
            pthread_mutex_unlock(&zones_mu);
            return 0;
        }
    if (nzones == capzones) {
        capzones = capzones ? 2 * capzones : 16;
        zones = xrealloc(zones, capzones * sizeof *zones);
    }
    zones[nzones++] = z;
    *out = z;
    pthread_mutex_unlock(&zones_mu);
    return 0;
}

/* ---- parsing ------------------------------------------------------------- */

enum { F_MIN, F_HOUR, F_DOM, F_MON, F_DOW, NFIELDS };

static const struct field_def {
    const char *name;
    int lo, hi;     /* accepted values */
    int star_hi;    /* highest value of "*" and N/S */
    const char *const *names; /* 3-letter names for lo.. (month 1.., dow 0..) */
} fields[NFIELDS] = {
    { "minute", 0, 59, 59, NULL },
    { "hour", 0, 23, 23, NULL },
    { "day-of-month", 1, 31, 31, NULL },
    { "month", 1, 12, 12,
      (const char *const[]){ "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep",
                             "oct", "nov", "dec" } },
    { "day-of-week", 0, 7, 6,
      (const char *const[]){ "sun", "mon", "tue", "wed", "thu", "fri", "sat" } },
};

struct cron {
    uint64_t minute;   /* bits 0-59 */
    uint32_t hour;     /* bits 0-23 */
    uint32_t dom;      /* bits 1-31 */
    uint32_t month;    /* bits 1-12 */
    uint32_t dow;      /* bits 0-6 */
    bool dom_star, dow_star;
    bool every_hour;   /* runs in both passes of a repeated hour */
    uint32_t dowdays[7]; /* days 1-31 whose weekday is in dow, for a month starting on weekday i */
    const struct tz_zone *zone;
};

static int ferr(struct kiln_err *err, int f, const char *fmt, const char *tok, size_t toklen)
{
    char t[128];
    snprintf(t, sizeof t, "%.*s", (int)(toklen > 100 ? 100 : toklen), tok);
    char msg[256];
    snprintf(msg, sizeof msg, fmt, t);
    return kiln_err_set(err, KILN_EPARSE, "cron: %s field: %s", fields[f].name, msg);
}

/* One value: a number or (month, dow) a name.  tok[0..len). */
static int parse_value(int f, const char *tok, size_t len, int *out, struct kiln_err *err)
{
    const struct field_def *fd = &fields[f];
    if (len == 0)
        return ferr(err, f, "'%s' is not a number", tok, len);
    if (isalpha((unsigned char)tok[0]) && fd->names) {
        int count = f == F_MON ? 12 : 7;
        if (len == 3)
            for (int i = 0; i < count; i++)
                if (strncasecmp(tok, fd->names[i], 3) == 0) {
                    *out = (f == F_MON ? 1 : 0) + i;
                    return 0;
                }
        return ferr(err, f, "unknown name '%s'", tok, len);
    }
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)tok[i]))
            return ferr(err, f, "'%s' is not a number", tok, len);
        if (v < 1000000)
            v = v * 10 + (tok[i] - '0');
    }
    if (v < fd->lo || v > fd->hi) {
        char fmt[64];
        snprintf(fmt, sizeof fmt, "'%%s' is out of range %d-%d", fd->lo, fd->hi);
        return ferr(err, f, fmt, tok, len);
    }
    *out = (int)v;
    return 0;
}

/* One field: comma-separated items; sets *mask (bit v for each value v). */
static int parse_field(int f, const char *s, size_t slen, uint64_t *mask, struct kiln_err *err)
{
    const struct field_def *fd = &fields[f];
    *mask = 0;
    const char *end = s + slen;
    const char *p = s;
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *ie = comma ? comma : end;
        size_t il = (size_t)(ie - p);
        if (il == 0)
            return ferr(err, f, "empty list item in '%s'", s, slen);
        const char *slash = memchr(p, '/', il);
        const char *re = slash ? slash : ie; /* end of the range part */
        int lo, hi, step = 1;
        if (re - p == 1 && *p == '*') {
            lo = fd->lo;
            hi = fd->star_hi;
        } else {
            const char *dash = memchr(p, '-', (size_t)(re - p));
            if (dash) {
                if (dash == p || dash + 1 == re)
                    return ferr(err, f, "'%s' is not a number", p, (size_t)(re - p));
                if (parse_value(f, p, (size_t)(dash - p), &lo, err) < 0 ||
                    parse_value(f, dash + 1, (size_t)(re - dash - 1), &hi, err) < 0)
                    return KILN_EPARSE;
                if (f == F_DOW && hi == 0 && lo > 0)
                    hi = 7; /* "fri-sun" */
                if (hi < lo)
                    return ferr(err, f, "range '%s' runs backwards", p, (size_t)(re - p));
            } else {
                if (parse_value(f, p, (size_t)(re - p), &lo, err) < 0)
                    return KILN_EPARSE;
                hi = slash ? fd->star_hi : lo;
                if (slash && lo > hi) /* "7/2" in day-of-week */
                    hi = lo;
            }
        }
        if (slash) {
            const char *st = slash + 1;
            size_t sl = (size_t)(ie - st);
            if (sl == 0)
                return ferr(err, f, "'%s' has no step after '/'", p, il);
            long v = 0;
            for (size_t i = 0; i < sl; i++) {
                if (!isdigit((unsigned char)st[i]))
                    return ferr(err, f, "step '%s' is not a number", st, sl);
                if (v < 1000000)
                    v = v * 10 + (st[i] - '0');
            }
            if (v == 0)
                return ferr(err, f, "step '%s' must be at least 1", st, sl);
            if (v > fd->star_hi - fd->lo) {
                char fmt[80];
                snprintf(fmt, sizeof fmt, "step '%%s' is larger than the field's range %d-%d",
                         fd->lo, fd->star_hi);
                return ferr(err, f, fmt, st, sl);
            }
            step = (int)v;
        }
        for (int v = lo; v <= hi; v += step)
            *mask |= UINT64_C(1) << (f == F_DOW && v == 7 ? 0 : v);
        if (!comma)
            break;
        p = comma + 1;
    }
    return 0;
}

static const struct {
    const char *name, *expr;
} macros[] = {
    { "@yearly", "0 0 1 1 *" }, { "@annually", "0 0 1 1 *" }, { "@monthly", "0 0 1 * *" },
    { "@weekly", "0 0 * * 0" }, { "@daily", "0 0 * * *" },    { "@midnight", "0 0 * * *" },
    { "@hourly", "0 * * * *" },
};

int cron_parse(const char *expr, const char *tz, struct cron **out, struct kiln_err *err)
{
    *out = NULL;
    if (!expr)
        expr = "";
    while (*expr == ' ' || *expr == '\t')
        expr++;
    size_t elen = strlen(expr);
    while (elen > 0 && (expr[elen - 1] == ' ' || expr[elen - 1] == '\t' ||
                        expr[elen - 1] == '\n' || expr[elen - 1] == '\r'))
        elen--;
    if (elen == 0)
        return kiln_err_set(err, KILN_EPARSE, "cron: empty expression");
    char buf[512];
    if (expr[0] == '@') {
        size_t i;
        for (i = 0; i < ARRAY_LEN(macros); i++)
            if (strlen(macros[i].name) == elen && strncasecmp(expr, macros[i].name, elen) == 0)
                break;
        if (i == ARRAY_LEN(macros))
            return kiln_err_set(err, KILN_EPARSE,
                                "cron: unknown macro '%.*s' (known: @yearly @annually @monthly "
                                "@weekly @daily @midnight @hourly)",
                                (int)(elen > 100 ? 100 : elen), expr);
        snprintf(buf, sizeof buf, "%s", macros[i].expr);
    } else {
        if (elen >= sizeof buf)
            return kiln_err_set(err, KILN_EPARSE, "cron: expression too long (%zu bytes)", elen);
        memcpy(buf, expr, elen);
        buf[elen] = '\0';
    }
    const char *fs[NFIELDS + 1];
    size_t fl[NFIELDS + 1];
    int nf = 0, total = 0;
    for (const char *p = buf; *p;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        const char *q = p;
        while (*q && *q != ' ' && *q != '\t')
            q++;
        if (nf < NFIELDS) {
            fs[nf] = p;
            fl[nf++] = (size_t)(q - p);
        }
        total++;
        p = q;
    }
    if (total != NFIELDS)
        return kiln_err_set(err, KILN_EPARSE, "cron: expected 5 fields, got %d", total);
    uint64_t m[NFIELDS];
    for (int f = 0; f < NFIELDS; f++)
        if (parse_field(f, fs[f], fl[f], &m[f], err) < 0)
            return KILN_EPARSE;
    struct cron *c = xcalloc(1, sizeof *c);
    c->minute = m[F_MIN];
    c->hour = (uint32_t)m[F_HOUR];
    c->dom = (uint32_t)m[F_DOM];
    c->month = (uint32_t)m[F_MON];
    c->dow = (uint32_t)m[F_DOW];
    c->dom_star = fs[F_DOM][0] == '*';
    c->dow_star = fs[F_DOW][0] == '*';
    c->every_hour = c->hour == (UINT32_C(1) << 24) - 1;
    for (int first = 0; first < 7; first++) {
        uint32_t dd = 0;
        for (int d = 1; d <= 31; d++)
            if (c->dow & (UINT32_C(1) << ((first + d - 1) % 7)))
                dd |= UINT32_C(1) << d;
        c->dowdays[first] = dd;
    }
    /* Never fires?  Only a restricted day-of-month ANDed with the month can
     * make it so.  Restricted day-of-week fields are ORed with it; an
     * unrestricted one is ANDed, but every date falls on every weekday in
     * some year (Feb 29 too, over 28 years), and an unrestricted
     * day-of-month always has the 1st.  So: does some month in the month
     * field have some day in the day-of-month field (Feb counting 29)? */
    if (!c->dom_star && c->dow_star) {
        bool any = false;
        for (int mo = 1; mo <= 12 && !any; mo++)
            if ((c->month >> mo) & 1)
                any = (c->dom & ((UINT64_C(2) << days_in_month(2000, mo)) - 2)) != 0;
        if (!any) {
            kiln_err_set(err, KILN_EINVALID,
                         "cron: never fires: day-of-month '%.*s' does not occur in month '%.*s'",
                         (int)fl[F_DOM], fs[F_DOM], (int)fl[F_MON], fs[F_MON]);
            free(c);
            return KILN_EINVALID;
        }
    }
    int rc = zone_get(tz, &c->zone, err);
    if (rc < 0) {
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void cron_free(struct cron *c)
{
    free(c);
}

const char *cron_tz_name(const struct cron *c)
{
    return c->zone->name;
}

/* ---- next fire time ------------------------------------------------------ */

/* Days 1..dim of month m of year y that match (bit d). */
static uint64_t month_days_mask(const struct cron *c, int64_t y, int m)
{
    int dim = days_in_month(y, m);
    uint64_t all = ((UINT64_C(2) << dim) - 2);
    uint64_t dd = c->dowdays[weekday(days_from_civil(y, m, 1))];
    /* An unrestricted field ("*", "*\/2") is ANDed; two restricted ones ORed. */
    uint64_t mask = c->dom_star || c->dow_star ? c->dom & dd : c->dom | dd;
    return mask & all;
}

bool cron_matches(const struct cron *c, int year, int month, int day, int hour, int minute)
{
    if (month < 1 || month > 12 || day < 1 || day > 31 || hour < 0 || hour > 23 ||
        minute < 0 || minute > 59)
        return false;
    return ((c->month >> month) & 1) && ((month_days_mask(c, year, month) >> day) & 1) &&
           ((c->hour >> hour) & 1) && ((c->minute >> minute) & 1);
}

/* Lowest set bit >= from, or -1. */
static int next_bit(uint64_t mask, int from)
{
    if (from >= 64)
        return -1;
    uint64_t m = mask >> from;
    return m ? from + __builtin_ctzll(m) : -1;
}

/* The first matching wall-clock minute at or after wall time w (seconds on
 * the naive local time line, as if the zone were UTC). */
static int next_wall(const struct cron *c, int64_t w, int64_t *out)
{
    int64_t mins = floor_div(w + 59, 60);
    int64_t days = floor_div(mins, 1440);
    int mod = (int)(mins - days * 1440);
    int hour = mod / 60, min = mod % 60;
    int64_t y;
    int mo, d;
    civil_from_days(days, &y, &mo, &d);
    while (y <= 9999) {
        if (!((c->month >> mo) & 1)) {
            int nm = next_bit(c->month, mo + 1);
            if (nm < 0) {
                y++;
                nm = next_bit(c->month, 1);
            }
            mo = nm;
            d = 1;
            hour = min = 0;
            continue;
        }
        int nd = next_bit(month_days_mask(c, y, mo), d);
        if (nd < 0) {
            if (++mo > 12) {
                mo = 1;
                y++;
            }
            d = 1;
            hour = min = 0;
            continue;
        }
        if (nd != d) {
            d = nd;
            hour = min = 0;
        }
        int nh = next_bit(c->hour, hour);
        if (nh < 0) {
            d++;
            hour = min = 0;
            continue;
        }
        if (nh != hour) {
            hour = nh;
            min = 0;
        }
        int nmin = next_bit(c->minute, min);
        if (nmin < 0) {
            min = 0;
            if (++hour == 24) {
                hour = 0;
                d++;
            }
            continue;
        }
        *out = ((days_from_civil(y, mo, d) * 24 + hour) * 60 + nmin) * 60;
        return 0;
    }
    return -ERANGE;
}

int cron_next(const struct cron *c, int64_t after_us, int64_t *next_us)
{
    int64_t s = floor_div(after_us, 1000000) + 1;
    if (s < S_FIRST)
        s = S_FIRST;
    if (s > S_LAST)
        return -ERANGE;
    for (;;) {
        struct seg g;
        zone_seg(c->zone, s, &g);
        int64_t lo = s + g.off, w;
        int rc;
        if (s == g.start && g.prev_off < g.off) {
            /* Spring forward at s: wall times [start+prev_off, start+off) do
             * not exist; any that match fire once, at s. */
            if ((rc = next_wall(c, g.start + g.prev_off, &w)) < 0)
                return rc;
            if (w < g.start + g.off) {
                *next_us = s * 1000000;
                return 0;
            }
        }
        if (g.prev_off > g.off && !c->every_hour) {
            /* Fall back at start: wall times below start+prev_off already
             * occurred before it. */
            int64_t seen = g.start + g.prev_off;
            if (lo < seen)
                lo = seen;
        }
        if ((rc = next_wall(c, lo, &w)) < 0)
            return rc;
        if (w - g.off < g.end) {
            if (w - g.off > S_LAST)
                return -ERANGE;
            *next_us = (w - g.off) * 1000000;
            return 0;
        }
        s = g.end;
        if (s > S_LAST)
            return -ERANGE;
    }
}

/* ---- formatting, parsing times ------------------------------------------- */

int cron_utc_offset(const struct cron *c, int64_t us)
{
    return zone_offset(c->zone, floor_div(us, 1000000));
}

void cron_format_time(const struct cron *c, int64_t us, char *buf, size_t n)
{
    int64_t t = floor_div(us, 1000000);
    int32_t off = zone_offset(c->zone, t);
    int64_t w = t + off;
    int64_t days = floor_div(w, SECS_PER_DAY);
    int sod = (int)(w - days * SECS_PER_DAY);
    int64_t y;
    int mo, d;
    civil_from_days(days, &y, &mo, &d);
    int a = off < 0 ? -off : off;
    char sign = off < 0 ? '-' : '+';
    if (a % 60)
        snprintf(buf, n, "%04lld-%02d-%02dT%02d:%02d:%02d%c%02d:%02d:%02d", (long long)y, mo, d,
                 sod / 3600, sod / 60 % 60, sod % 60, sign, a / 3600, a / 60 % 60, a % 60);
    else
        snprintf(buf, n, "%04lld-%02d-%02dT%02d:%02d:%02d%c%02d:%02d", (long long)y, mo, d,
                 sod / 3600, sod / 60 % 60, sod % 60, sign, a / 3600, a / 60 % 60);
}

/* The instant of wall time w in the zone: a time in a gap is the end of the
 * gap, a repeated time its first occurrence. */
static int64_t wall_to_instant(const struct tz_zone *z, int64_t w)
{
    int64_t s = w - 2 * SECS_PER_DAY;
    for (int i = 0; i < 64; i++) {
        struct seg g;
        zone_seg(z, s, &g);
        if (w < g.start + g.off) /* in the gap before this stretch */
            return g.start;
        if (w < g.end + g.off)
            return w - g.off;
        s = g.end;
    }
    return w - zone_offset(z, w);
}

static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

int cron_parse_time(const struct cron *c, const char *s, int64_t *us, struct kiln_err *err)
{
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0;
    int64_t frac = 0;
#define BADT() kiln_err_set(err, KILN_EPARSE, \
        "cron: cannot parse '%s' as an ISO-8601 time (YYYY-MM-DD[THH:MM[:SS]][Z|+HH:MM])", s)
    if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
        !digits(&p, 2, &d))
        return BADT();
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
        return BADT();
    bool has_time = false;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        has_time = true;
        if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi))
            return BADT();
        if (*p == ':') {
            p++;
            if (!digits(&p, 2, &sec))
                return BADT();
            if (*p == '.' || *p == ',') {
                p++;
                int nd = 0;
                if (!isdigit((unsigned char)*p))
                    return BADT();
                while (isdigit((unsigned char)*p)) {
                    if (nd < 6) {
                        frac = frac * 10 + (*p - '0');
                        nd++;
                    }
                    p++;
                }
                while (nd++ < 6)
                    frac *= 10;
            }
        }
        if (h > 23 || mi > 59 || sec > 59)
            return BADT();
    }
    int64_t w = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 + sec;
    int64_t t;
    if (*p == '\0') {
        t = wall_to_instant(c->zone, w);
    } else if (has_time && (*p == 'Z' || *p == 'z') && p[1] == '\0') {
        t = w;
    } else if (has_time && (*p == '+' || *p == '-')) {
        int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
        if (!digits(&p, 2, &oh))
            return BADT();
        if (*p == ':')
            p++;
        if (*p && !digits(&p, 2, &om))
            return BADT();
        if (*p || oh > 23 || om > 59)
            return BADT();
        t = w - sign * (oh * 3600 + om * 60);
    } else {
        return BADT();
    }
#undef BADT
    *us = t * 1000000 + frac;
    return 0;
}
