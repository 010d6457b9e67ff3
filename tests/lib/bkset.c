/*
 * bkset.c - instances, dumps, generations, backup sets and the monotonic
 * writer for the backup and page suites (see bkset.h).
 */
#include "bkset.h"
#include "proc.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void tl_bk_setup(void)
{
    tl_tmp_setup("jsbackup");
    js_fault_reset();
}

void tl_bk_teardown(void)
{
    js_fault_reset();
    tl_tmp_teardown();
}
/* Every file under dir with its SHA-256, and every directory: "<absent>"
 * when dir does not exist.  Two equal snapshots mean an unchanged tree. */
char *tl_tree_snapshot(const char *dir)
{
    if (!tl_exists(dir))
        return strdup("<absent>");
    return tl_sh_out("cd '%s' && { find . -type d | LC_ALL=C sort; find . -type f -print0 | LC_ALL=C sort -z | "
                  "xargs -0 -r sha256sum; }",
                  dir);
}


js_instance *tl_create_open(const char *dir, const js_params *p)
{
    js_instance *inst = NULL;
    OK(js_create(dir, p));
    OK(js_open(dir, p, &inst));
    return inst;
}

js_instance *tl_reopen(const char *dir)
{
    js_params p = tl_test_params();
    js_instance *inst = NULL;
    OK(js_open(dir, &p, &inst));
    return inst;
}

static size_t make_val(char *buf, const char *prefix, int i, size_t vlen)
{
    int n = snprintf(buf, vlen + 1, "%s=%d:", prefix, i);
    for (size_t k = (size_t)n; k < vlen; k++)
        buf[k] = (char)('a' + (i + (int)k) % 26);
    return vlen > (size_t)n ? vlen : (size_t)n;
}

/* Put PREFIX:i for i in [from, to), 50 keys a transaction. */
void tl_fill(js_instance *inst, const char *prefix, int from, int to, size_t vlen)
{
    js_session *s;
    char key[64], *val = malloc(vlen + 64);
    OK(js_session_open(inst, &s));
    for (int i = from; i < to;) {
        OK(js_txn_begin(s, 0));
        for (int k = 0; k < 50 && i < to; k++, i++) {
            int kl = snprintf(key, sizeof key, "%s:%06d", prefix, i);
            size_t vl = make_val(val, prefix, i, vlen);
            OK(js_put(s, key, (size_t)kl, val, vl));
        }
        OK(js_txn_commit(s, 0));
    }
    js_session_close(s);
    free(val);
}

/* Delete PREFIX:i for i in [from, to) step 'step'. */
void tl_del_some(js_instance *inst, const char *prefix, int from, int to, int step)
{
    js_session *s;
    char key[64];
    OK(js_session_open(inst, &s));
    OK(js_txn_begin(s, 0));
    for (int i = from; i < to; i += step) {
        int kl = snprintf(key, sizeof key, "%s:%06d", prefix, i);
        OK(js_del(s, key, (size_t)kl));
    }
    OK(js_txn_commit(s, 0));
    js_session_close(s);
}

/* PREFIX:i holds its value for every i in [from, to). */
void tl_check_fill(js_instance *inst, const char *prefix, int from, int to, size_t vlen)
{
    js_session *s;
    char key[64], *want = malloc(vlen + 64);
    OK(js_session_open(inst, &s));
    for (int i = from; i < to; i++) {
        int kl = snprintf(key, sizeof key, "%s:%06d", prefix, i);
        size_t wl = make_val(want, prefix, i, vlen);
        void *v = NULL;
        size_t vl = 0;
        JET_ERR e = js_get(s, key, (size_t)kl, &v, &vl);
        cr_assert_eq(e, JET_errSuccess, "%s: %s", key, js_errname(e));
        cr_assert(vl == wl && !memcmp(v, want, wl), "%s has a wrong value", key);
        free(v);
    }
    js_session_close(s);
    free(want);
}

void tl_put_str(js_instance *inst, const char *k, const char *v)
{
    js_session *s;
    OK(js_session_open(inst, &s));
    OK(js_put(s, k, strlen(k), v, strlen(v)));
    js_session_close(s);
}

/* 1 when key holds v. */
int tl_has_str(js_instance *inst, const char *k, const char *v)
{
    js_session *s;
    void *got = NULL;
    size_t gl = 0;
    OK(js_session_open(inst, &s));
    JET_ERR e = js_get(s, k, strlen(k), &got, &gl);
    js_session_close(s);
    int ok = e == JET_errSuccess && gl == strlen(v) && !memcmp(got, v, gl);
    free(got);
    return ok;
}


void tl_dump_free(tl_kvdump *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->k[i]);
        free(d->v[i]);
    }
    free(d->k);
    free(d->v);
    free(d->kl);
    free(d->vl);
    memset(d, 0, sizeof *d);
}

void tl_dump_inst(js_instance *inst, tl_kvdump *d)
{
    js_session *s;
    js_cursor *c;
    memset(d, 0, sizeof *d);
    OK(js_session_open(inst, &s));
    OK(js_txn_begin(s, JS_TXN_READONLY));
    OK(js_cursor_open(s, &c));
    JET_ERR e = js_cursor_seek(c, NULL, 0);
    while (e == JET_errSuccess) {
        const void *k, *v;
        size_t kl, vl;
        OK(js_cursor_key(c, &k, &kl));
        OK(js_cursor_value(c, &v, &vl));
        if (d->n == d->cap) {
            d->cap = d->cap ? 2 * d->cap : 1024;
            d->k = realloc(d->k, d->cap * sizeof *d->k);
            d->v = realloc(d->v, d->cap * sizeof *d->v);
            d->kl = realloc(d->kl, d->cap * sizeof *d->kl);
            d->vl = realloc(d->vl, d->cap * sizeof *d->vl);
        }
        d->k[d->n] = malloc(kl + 1);
        memcpy(d->k[d->n], k, kl);
        d->kl[d->n] = kl;
        d->v[d->n] = malloc(vl + 1);
        memcpy(d->v[d->n], v, vl);
        d->vl[d->n] = vl;
        d->n++;
        e = js_cursor_next(c);
    }
    cr_assert_eq(e, JET_errRecordNotFound, "cursor walk ended with %s", js_errname(e));
    js_cursor_close(c);
    OK(js_txn_commit(s, 0));
    uint64_t count = 0;
    OK(js_count(s, &count));
    cr_assert_eq(count, d->n, "js_count %llu but the cursor saw %zu keys", (unsigned long long)count, d->n);
    js_session_close(s);
}

void tl_dump_dir(const char *dir, tl_kvdump *d)
{
    js_instance *inst = tl_reopen(dir);
    tl_dump_inst(inst, d);
    OK(js_close(inst));
}

/* NULL when equal, else a description of the first difference (static). */
const char *tl_dump_diff(const tl_kvdump *a, const tl_kvdump *b)
{
    static char why[512];
    size_t n = a->n < b->n ? a->n : b->n;
    for (size_t i = 0; i < n; i++) {
        if (a->kl[i] != b->kl[i] || memcmp(a->k[i], b->k[i], a->kl[i])) {
            snprintf(why, sizeof why, "key #%zu: '%.*s' vs '%.*s'", i, (int)a->kl[i], a->k[i], (int)b->kl[i],
                     b->k[i]);
            return why;
        }
        if (a->vl[i] != b->vl[i] || memcmp(a->v[i], b->v[i], a->vl[i])) {
            snprintf(why, sizeof why, "value of '%.*s' differs (%zu vs %zu bytes)", (int)a->kl[i], a->k[i],
                     a->vl[i], b->vl[i]);
            return why;
        }
    }
    if (a->n != b->n) {
        snprintf(why, sizeof why, "%zu keys vs %zu keys (first extra: '%.*s')", a->n, b->n,
                 (int)(a->n > b->n ? a->kl[n] : b->kl[n]), a->n > b->n ? a->k[n] : b->k[n]);
        return why;
    }
    return NULL;
}



static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

void tl_list_gens(const char *dir, tl_genlist *out)
{
    out->n = 0;
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "opendir %s", dir);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        unsigned g;
        char tail[8];
        if (strlen(de->d_name) == 15 && sscanf(de->d_name, "edb%8X%4s", &g, tail) == 2 && !strcmp(tail, ".log") &&
            g != 0) {
            cr_assert_lt(out->n, TL_MAXGENS);
            out->g[out->n++] = g;
        }
    }
    closedir(d);
    qsort(out->g, out->n, sizeof out->g[0], cmp_u32);
}

int tl_gen_has(const tl_genlist *l, uint32_t g)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->g[i] == g)
            return 1;
    return 0;
}

/* Every generation of 'before' is still in 'after'; NULL or the first missing. */
const char *tl_gens_kept(const tl_genlist *before, const tl_genlist *after)
{
    static char why[64];
    for (size_t i = 0; i < before->n; i++)
        if (!tl_gen_has(after, before->g[i])) {
            snprintf(why, sizeof why, "edb%08X.log was deleted", before->g[i]);
            return why;
        }
    return NULL;
}

void tl_gen_path(char *out, const char *dir, uint32_t g)
{
    snprintf(out, PATH_MAX, "%s/edb%08X.log", dir, g);
}


void tl_read_binfo(const char *set, tl_binfo *bi)
{
    char path[PATH_MAX], line[256];
    memset(bi, 0, sizeof *bi);
    snprintf(path, sizeof path, "%s/backup.info", set);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "no %s", path);
    while (fgets(line, sizeof line, f)) {
        char key[64], val[128];
        if (sscanf(line, "%63[^:]: %127[^\n]", key, val) != 2)
            continue;
        if (!strcmp(key, "type"))
            snprintf(bi->type, sizeof bi->type, "%s", val);
        else if (!strcmp(key, "gen_low"))
            bi->gen_low = (uint32_t)strtoul(val, NULL, 16);
        else if (!strcmp(key, "gen_high"))
            bi->gen_high = (uint32_t)strtoul(val, NULL, 16);
        else if (!strcmp(key, "full_gen_high"))
            bi->full_gen_high = (uint32_t)strtoul(val, NULL, 16);
        else if (!strcmp(key, "log_signature"))
            snprintf(bi->log_signature, sizeof bi->log_signature, "%s", val);
    }
    fclose(f);
    cr_assert(bi->gen_low && bi->gen_high >= bi->gen_low, "%s: bad backup.info", set);
}

/* Replace the value of key in backup.info. */
void tl_edit_binfo(const char *set, const char *key, const char *value)
{
    char path[PATH_MAX], line[256], out[4096] = "";
    size_t len = 0;
    int found = 0;
    snprintf(path, sizeof path, "%s/backup.info", set);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    while (fgets(line, sizeof line, f)) {
        size_t kl = strlen(key);
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            len += (size_t)snprintf(out + len, sizeof out - len, "%s: %s\n", key, value);
            found = 1;
        } else {
            len += (size_t)snprintf(out + len, sizeof out - len, "%s", line);
        }
    }
    fclose(f);
    cr_assert(found, "no %s in %s", key, path);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(out, f);
    fclose(f);
}

/* Rewrite SHA256SUMS so it matches the set's files as they are now. */
void tl_regen_sums(const char *set)
{
    cr_assert_eq(tl_sh("cd '%s' && find . -maxdepth 1 -type f ! -name SHA256SUMS -printf '%%f\\n' | LC_ALL=C sort | "
                    "xargs -r sha256sum > '%s/sums.tmp' && mv '%s/sums.tmp' SHA256SUMS",
                    set, tl_tmp, tl_tmp),
                 0);
}

/* `sha256sum -c SHA256SUMS` inside the set passes, and SHA256SUMS lists
 * every other file of it (and nothing else is there: no edb.chk, edb.log,
 * temp files). */
void tl_assert_set_sums(const char *set)
{
    cr_assert_eq(tl_sh("cd '%s' && sha256sum -c --quiet --strict SHA256SUMS >/dev/null 2>&1", set), 0,
                 "sha256sum -c SHA256SUMS fails in %s", set);
    char *listed = tl_sh_out("cd '%s' && awk '{print $2}' SHA256SUMS | LC_ALL=C sort", set);
    char *present = tl_sh_out("cd '%s' && ls -A | grep -v '^SHA256SUMS$' | LC_ALL=C sort", set);
    cr_assert_str_eq(listed, present, "%s: SHA256SUMS lists\n%s\nbut the set holds\n%s", set, listed, present);
    free(listed);
    free(present);
    char p[PATH_MAX], q[PATH_MAX];
    snprintf(p, sizeof p, "%s/edb.chk", set);
    snprintf(q, sizeof q, "%s/edb.log", set);
    cr_assert(!tl_exists(p) && !tl_exists(q), "%s holds a checkpoint file or a current log", set);
    struct stat st;
    cr_assert_eq(stat(set, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0700, "%s has mode %o", set, st.st_mode & 0777);
    snprintf(p, sizeof p, "%s/jetsnap.edb", set);
    cr_assert_eq(stat(p, &st), 0, "no jetsnap.edb in %s", set);
    cr_assert_eq(st.st_mode & 0777, 0600, "%s has mode %o", p, st.st_mode & 0777);
}

const char *tl_set_of(const char *dest, unsigned flags)
{
    static char bufs[4][PATH_MAX];
    static int next;
    char *p = bufs[next++ % 4];
    snprintf(p, PATH_MAX, "%s%s", dest, (flags & JS_BACKUP_ATOMIC) ? "/new" : "");
    return p;
}

/* A backup that must succeed; then the set passes sha256sum -c. */
void tl_backup_ok(js_instance *inst, const char *dest, unsigned flags)
{
    OK(js_backup(inst, dest, flags, NULL, NULL));
    if (dest)
        tl_assert_set_sums(tl_set_of(dest, flags));
    if (dest && (flags & JS_BACKUP_ATOMIC)) {
        char p[PATH_MAX], q[PATH_MAX];
        snprintf(p, sizeof p, "%s/temp", dest);
        snprintf(q, sizeof q, "%s/old", dest);
        cr_assert(!tl_exists(p), "%s left after a successful backup", p);
        cr_assert(!tl_exists(q), "%s left after a successful backup", q);
    }
}

/* Restore that must succeed and leave a clean-shutdown instance. */
void tl_restore_ok(const char *backup, const char *target, const char *logs, uint32_t until)
{
    OK(js_restore(backup, target, logs, until, NULL, NULL));
    js_info info;
    OK(js_info_read(target, &info));
    cr_assert_eq(info.state, JS_DB_CLEAN_SHUTDOWN, "restored %s has state %d", target, info.state);
}


static size_t seq_val(char *buf, uint64_t n)
{
    return make_val(buf, "seq", (int)n, 120);
}

void *tl_mwriter_main(void *arg)
{
    tl_mwriter *w = arg;
    js_session *s = NULL;
    char key[64], val[256], cnt[32];
    w->err = js_session_open(w->inst, &s);
    for (uint64_t n = atomic_load(&w->acked) + 1; !w->err && !atomic_load(&w->stop) && n <= w->limit; n++) {
        int kl = snprintf(key, sizeof key, "seq:%llu", (unsigned long long)n);
        size_t vl = seq_val(val, n);
        int cl = snprintf(cnt, sizeof cnt, "%llu", (unsigned long long)n);
        w->err = js_txn_begin(s, 0);
        if (!w->err)
            w->err = js_put(s, key, (size_t)kl, val, vl);
        if (!w->err)
            w->err = js_put(s, "counter", 7, cnt, (size_t)cl);
        atomic_store(&w->issued, n);
        if (!w->err)
            w->err = js_txn_commit(s, w->durable ? JS_COMMIT_FLAG_DURABLE : 0);
        if (w->err)
            break;
        atomic_store(&w->acked, n);
        if (w->ackfd >= 0) {
            uint64_t v = n;
            if (write(w->ackfd, &v, sizeof v) != (ssize_t)sizeof v)
                break;
        }
        if (n % 16 == 0)
            usleep(200);
    }
    js_session_close(s);
    return NULL;
}

void tl_mwriter_start(tl_mwriter *w, js_instance *inst, uint64_t limit, int durable, int ackfd)
{
    memset(w, 0, sizeof *w);
    w->inst = inst;
    w->limit = limit;
    w->durable = durable;
    w->ackfd = ackfd;
    atomic_store(&w->acked, 0);
    atomic_store(&w->stop, 0);
    cr_assert_eq(pthread_create(&w->th, NULL, tl_mwriter_main, w), 0);
}

void tl_mwriter_stop(tl_mwriter *w)
{
    atomic_store(&w->stop, 1);
    pthread_join(w->th, NULL);
    cr_assert_eq(w->err, JET_errSuccess, "writer failed: %s", js_errname(w->err));
}

/* The monotonic invariant of an instance: seq:1..M with no gap and nothing
 * after, counter = M, plus 'extra' other keys.  Returns M. */
uint64_t tl_check_monotonic(js_instance *inst, uint64_t extra)
{
    js_session *s;
    void *v = NULL;
    size_t vl = 0;
    char key[64], want[256];
    OK(js_session_open(inst, &s));
    uint64_t m = 0;
    JET_ERR e = js_get(s, "counter", 7, &v, &vl);
    if (e == JET_errSuccess) {
        char tmp[32];
        cr_assert_lt(vl, sizeof tmp);
        memcpy(tmp, v, vl);
        tmp[vl] = '\0';
        m = strtoull(tmp, NULL, 10);
        free(v);
    } else {
        cr_assert_eq(e, JET_errRecordNotFound);
    }
    for (uint64_t n = 1; n <= m; n++) {
        int kl = snprintf(key, sizeof key, "seq:%llu", (unsigned long long)n);
        e = js_get(s, key, (size_t)kl, &v, &vl);
        cr_assert_eq(e, JET_errSuccess, "seq:%llu missing (counter %llu): a gap", (unsigned long long)n,
                     (unsigned long long)m);
        size_t wl = seq_val(want, n);
        cr_assert(vl == wl && !memcmp(v, want, wl), "seq:%llu has a wrong value", (unsigned long long)n);
        free(v);
    }
    int kl = snprintf(key, sizeof key, "seq:%llu", (unsigned long long)(m + 1));
    e = js_get(s, key, (size_t)kl, &v, &vl);
    cr_assert_eq(e, JET_errRecordNotFound, "seq:%llu present beyond counter %llu", (unsigned long long)(m + 1),
                 (unsigned long long)m);
    uint64_t count = 0;
    OK(js_count(s, &count));
    cr_assert_eq(count, m + (m ? 1 : 0) + extra, "%llu keys, expected seq:1..%llu + counter + %llu",
                 (unsigned long long)count, (unsigned long long)m, (unsigned long long)extra);
    js_session_close(s);
    return m;
}


int tl_record_cb(void *ctx, int snp, int snt, const js_progress *p)
{
    tl_cbrec *r = ctx;
    cr_assert(snp == JS_SNP_BACKUP || snp == JS_SNP_RESTORE);
    cr_assert_eq(p->units_total, 100);
    cr_assert_leq(p->units_done, 100);
    if (p->units_done < r->last_units && snt != JS_SNT_FAIL)
        r->monotonic_units = 0;
    r->last_units = p->units_done;
    if (p->phase)
        snprintf(r->last_phase, sizeof r->last_phase, "%s", p->phase);
    switch (snt) {
    case JS_SNT_BEGIN: r->begins++; break;
    case JS_SNT_PROGRESS: r->progresses++; break;
    case JS_SNT_COMPLETE:
        r->completes++;
        r->gen_low = p->gen_low;
        r->gen_high = p->gen_high;
        snprintf(r->truncated, sizeof r->truncated, "%s", p->truncated ? p->truncated : "");
        break;
    case JS_SNT_FAIL:
        r->fails++;
        r->fail_err = p->err;
        break;
    }
    if (r->w && p->phase && !strcmp(p->phase, "roll-log") && !r->acked_at_roll)
        r->acked_at_roll = atomic_load(&r->w->acked);
    if (r->sleep_us && snt == JS_SNT_PROGRESS)
        usleep(r->sleep_us);
    return 0;
}

void tl_assert_stamp(const js_backup_stamp *st, uint32_t lo, uint32_t hi, const char *what)
{
    cr_assert_eq(st->gen_low, lo, "%s: gen_low %08X, expected %08X", what, st->gen_low, lo);
    cr_assert_eq(st->gen_high, hi, "%s: gen_high %08X, expected %08X", what, st->gen_high, hi);
    if (lo) {
        int64_t now = (int64_t)time(NULL);
        cr_assert(st->time <= now && st->time > now - 120, "%s: time %lld", what, (long long)st->time);
    }
}
