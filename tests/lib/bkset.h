/*
 * bkset.h - what the backup and page suites share: instances filled with
 * known keys and checked back, dumps of every key, the log generations of
 * a directory, backup sets (backup.info, SHA256SUMS) and the backups and
 * restores that must succeed, the monotonic writer of DESIGN section 6 and
 * a status callback that records what it saw.  Scratch paths are under
 * tl_tmp (testlib.h).
 */
#ifndef TL_BKSET_H
#define TL_BKSET_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

#include "testlib.h"

/* The backup suites' .init and .fini: a scratch tl_tmp ("jsbackup") and no
 * fault armed, before and after. */
void tl_bk_setup(void);
void tl_bk_teardown(void);

/* Every key and value of an instance, in key order. */
typedef struct tl_kvdump {
    size_t n, cap;
    char **k, **v;
    size_t *kl, *vl;
} tl_kvdump;

/* Assert two dumps are equal, naming the first difference. */
#define ASSERT_DUMP_EQ(a, b, what)                                                   \
    do {                                                                             \
        const char *why_ = tl_dump_diff((a), (b));                                   \
        cr_assert_null(why_, "%s: dumps differ: %s", (what), why_ ? why_ : "");      \
    } while (0)

#define TL_MAXGENS 4096

/* Generation numbers, sorted. */
typedef struct tl_genlist {
    uint32_t g[TL_MAXGENS];
    size_t n;
} tl_genlist;

/* What a set's backup.info says. */
typedef struct tl_binfo {
    char type[32];
    uint32_t gen_low, gen_high, full_gen_high;
    char log_signature[64];
} tl_binfo;

/* The monotonic writer: transaction N puts seq:N and sets counter to N. */
typedef struct tl_mwriter {
    js_instance *inst;
    _Atomic uint64_t acked;     /* highest N whose commit returned */
    _Atomic uint64_t issued;    /* highest N whose commit was called: a commit
                                   may be durable, and so in a snapshot, before
                                   its call returns and acked counts it */
    atomic_int stop;
    uint64_t limit;
    int durable;
    int ackfd;                  /* -1, or a pipe to report acks to */
    JET_ERR err;
    pthread_t th;
} tl_mwriter;

/* What tl_record_cb saw of a backup or restore. */
typedef struct tl_cbrec {
    int begins, progresses, completes, fails;
    JET_ERR fail_err;
    uint32_t gen_low, gen_high;
    char truncated[64];
    char last_phase[32];
    uint64_t last_units;
    int monotonic_units;    /* units_done never went down */
    unsigned sleep_us;      /* per progress call */
    tl_mwriter *w;             /* acked when the roll-log phase began */
    uint64_t acked_at_roll;
} tl_cbrec;

/* Every file under dir with its SHA-256, and every directory: "<absent>"
 * when dir does not exist.  Two equal snapshots mean an unchanged tree. */
char *tl_tree_snapshot(const char *dir);

/* js_create then js_open of dir with *p (both must succeed). */
js_instance *tl_create_open(const char *dir, const js_params *p);

/* js_open of dir with tl_test_params() (must succeed). */
js_instance *tl_reopen(const char *dir);

/* Put PREFIX:i for i in [from, to), 50 keys a transaction. */
void tl_fill(js_instance *inst, const char *prefix, int from, int to, size_t vlen);

/* Delete PREFIX:i for i in [from, to) step 'step'. */
void tl_del_some(js_instance *inst, const char *prefix, int from, int to, int step);

/* PREFIX:i holds its value for every i in [from, to). */
void tl_check_fill(js_instance *inst, const char *prefix, int from, int to, size_t vlen);

/* Put k = v (C strings) in one implicit transaction. */
void tl_put_str(js_instance *inst, const char *k, const char *v);

/* 1 when key holds v. */
int tl_has_str(js_instance *inst, const char *k, const char *v);

/* Free what a dump holds and empty it. */
void tl_dump_free(tl_kvdump *d);

/* Every key and value of inst in key order, through a cursor in a
 * read-only transaction; asserts js_count agrees. */
void tl_dump_inst(js_instance *inst, tl_kvdump *d);

/* tl_dump_inst of the instance in dir (opened and closed). */
void tl_dump_dir(const char *dir, tl_kvdump *d);

/* NULL when equal, else a description of the first difference (static). */
const char *tl_dump_diff(const tl_kvdump *a, const tl_kvdump *b);

/* The closed log generations (edbXXXXXXXX.log, not edb.log) in dir,
 * sorted. */
void tl_list_gens(const char *dir, tl_genlist *out);

/* 1 when generation g is in l. */
int tl_gen_has(const tl_genlist *l, uint32_t g);

/* Every generation of 'before' is still in 'after'; NULL or the first missing. */
const char *tl_gens_kept(const tl_genlist *before, const tl_genlist *after);

/* The path of generation g in dir into out (PATH_MAX). */
void tl_gen_path(char *out, const char *dir, uint32_t g);

/* The fields of set's backup.info this suite checks (asserts a sane
 * generation range). */
void tl_read_binfo(const char *set, tl_binfo *bi);

/* Replace the value of key in backup.info. */
void tl_edit_binfo(const char *set, const char *key, const char *value);

/* Rewrite SHA256SUMS so it matches the set's files as they are now. */
void tl_regen_sums(const char *set);

/* `sha256sum -c SHA256SUMS` inside the set passes, and SHA256SUMS lists
 * every other file of it (and nothing else is there: no edb.chk, edb.log,
 * temp files). */
void tl_assert_set_sums(const char *set);

/* Where the set of a backup to dest is: DEST, or DEST/new when atomic
 * (rotating static buffers). */
const char *tl_set_of(const char *dest, unsigned flags);

/* A backup that must succeed; then the set passes sha256sum -c. */
void tl_backup_ok(js_instance *inst, const char *dest, unsigned flags);

/* Restore that must succeed and leave a clean-shutdown instance. */
void tl_restore_ok(const char *backup, const char *target, const char *logs, uint32_t until);

/* The writer thread's body (arg: a tl_mwriter set up by hand, for a child
 * process that cannot assert). */
void *tl_mwriter_main(void *arg);

/* Start a writer thread committing seq:1..limit (and counter) on inst,
 * durably if durable; each acknowledged N written to ackfd unless -1. */
void tl_mwriter_start(tl_mwriter *w, js_instance *inst, uint64_t limit, int durable, int ackfd);

/* Stop the writer and join it; asserts it met no error. */
void tl_mwriter_stop(tl_mwriter *w);

/* The monotonic invariant of an instance: seq:1..M with no gap and nothing
 * after, counter = M, plus 'extra' other keys.  Returns M. */
uint64_t tl_check_monotonic(js_instance *inst, uint64_t extra);

/* A js_status_cb filling the tl_cbrec at ctx. */
int tl_record_cb(void *ctx, int snp, int snt, const js_progress *p);

/* A backup stamp of the header holds generations lo..hi and, when lo is
 * not 0, a time within the last two minutes; what names it. */
void tl_assert_stamp(const js_backup_stamp *st, uint32_t lo, uint32_t hi, const char *what);

#endif
