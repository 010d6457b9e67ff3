/*
 * test_pages.c - zero is corruption where a page is in use (issue 8, items
 * 2 and 3; the rule is in core/page.h): backup, `check`, `verify` and
 * `restore` refuse a zeroed or bit-flipped used page (leaf, branch,
 * overflow, free-list and meta page), in the live file and in a backup set,
 * naming the page; an unallocated zero page is accepted; restore refuses a
 * set whose backup.info, SHA256SUMS and files disagree, and a refused
 * restore leaves nothing that opens.
 *
 * Regressions for (each test failed before the fix):
 *   live_damage_refused_by_backup_and_check   core/backup.c bk_copy_db, core/check.c check_db
 *   set_damage_refused_by_check_verify_restore core/restore.c rs_copy_db, core/check.c check_db
 *   zero_page_at_the_high_water_mark_boundary core/backup.c bk_copy_db
 *   set_without_bound_restore_checks_after_replay core/restore.c js_restore
 *   edited_manifest_refused                    core/restore.c rs_check_set
 *   cli_refuses_zeroed_page                    core/check.c, core/restore.c
 *
 * Every test works in its own mkdtemp directory under /tmp with 4 KiB
 * pages.  Damage is done with pwrite on the file (the instance closed, or
 * open and quiet after a checkpoint), like `dd conv=notrunc` would.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jetsnap.h"
#include "store/page.h"
#include "bkset.h"
#include "proc.h"
#include "testlib.h"

#define PS 4096u
#define META_NEXT_OFF 40u        /* inst.h META_NEXT */
#define HDR_VALID_BELOW_OFF (PG_HDR_SIZE + 120u)   /* inst.h: header field valid_below */

static void setup(void)
{
    tl_tmp_setup("jspages");
}

TestSuite(pages, .init = setup, .fini = tl_tmp_teardown, .timeout = 120);

/* ------------------------------------------------------------------ */
/* Instances and sets                                                    */
/* ------------------------------------------------------------------ */
static void put_range(js_instance *inst, const char *prefix, int from, int to, size_t vlen)
{
    js_session *s;
    char key[64], *val = malloc(vlen);
    cr_assert_not_null(val);
    OK(js_session_open(inst, &s));
    for (int i = from; i < to;) {
        OK(js_txn_begin(s, 0));
        for (int k = 0; k < 50 && i < to; k++, i++) {
            int kl = snprintf(key, sizeof key, "%s:%06d", prefix, i);
            for (size_t b = 0; b < vlen; b++)
                val[b] = (char)('a' + (i + (int)b) % 26);
            OK(js_put(s, key, (size_t)kl, val, vlen));
        }
        OK(js_txn_commit(s, 0));
    }
    js_session_close(s);
    free(val);
}

/* An instance with every kind of used page: a tree of two levels (leaves
 * and branches), overflow chains (10 KB values) and free-list pages (the
 * chains of deleted big values).  Left open and quiet: rolled and
 * checkpointed, so every page is on disk. */
static js_instance *make_instance(const char *dir)
{
    js_params p = tl_test_params();
    OK(js_create(dir, &p));
    js_instance *inst = tl_reopen(dir);
    put_range(inst, "small", 0, 1500, 100);
    put_range(inst, "big", 0, 12, 10000);
    tl_del_some(inst, "big", 0, 6, 1);
    /* A roll: a backup's generations then hold no change of these pages,
     * so a damaged page in a set is one replay does not rewrite. */
    OK(js_log_roll(inst, NULL));
    OK(js_checkpoint(inst));
    return inst;
}

/* A full backup into dest, made while the instance is quiet. */
static void make_full_set(js_instance *inst, const char *dest)
{
    OK(js_backup(inst, dest, JS_BACKUP_CREATE_DIR, NULL, NULL));
}

/* tl_regen_sums, then the edited set passes sha256sum -c again. */
static void regen_sums_checked(const char *set)
{
    tl_regen_sums(set);
    cr_assert_eq(tl_sh("cd '%s' && sha256sum -c --quiet --strict SHA256SUMS >/dev/null 2>&1", set), 0);
}

/* Replace the value of key in backup.info. */
/* The value of key in backup.info (static buffer). */
static const char *binfo_get(const char *set, const char *key)
{
    static char val[128];
    char path[PATH_MAX], line[256];
    snprintf(path, sizeof path, "%s/backup.info", set);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    val[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        size_t kl = strlen(key);
        if (!strncmp(line, key, kl) && line[kl] == ':')
            sscanf(line + kl + 1, " %127[^\n]", val);
    }
    fclose(f);
    cr_assert(val[0], "no %s in %s/backup.info", key, set);
    return val;
}

/* ------------------------------------------------------------------ */
/* Pages on disk                                                         */
/* ------------------------------------------------------------------ */
static void read_page(const char *db, uint32_t pgno, uint8_t *pg)
{
    int fd = open(db, O_RDONLY);
    cr_assert_geq(fd, 0, "open %s: %s", db, strerror(errno));
    cr_assert_eq(pread(fd, pg, PS, (off_t)pgno * PS), (ssize_t)PS, "read page %u of %s", pgno, db);
    close(fd);
}

static void write_page(const char *db, uint32_t pgno, const uint8_t *pg)
{
    int fd = open(db, O_WRONLY);
    cr_assert_geq(fd, 0, "open %s: %s", db, strerror(errno));
    cr_assert_eq(pwrite(fd, pg, PS, (off_t)pgno * PS), (ssize_t)PS, "write page %u of %s", pgno, db);
    cr_assert_eq(fsync(fd), 0);
    close(fd);
}

static uint32_t file_pages(const char *db)
{
    struct stat st;
    cr_assert_eq(stat(db, &st), 0);
    return (uint32_t)(st.st_size / PS);
}

/* The meta page's high-water mark. */
static uint32_t hwm_of(const char *db)
{
    uint8_t pg[PS];
    read_page(db, PG_META_PGNO, pg);
    cr_assert_eq(pg_verify(pg, PS, PG_META_PGNO), PG_OK);
    return pg_u32(pg + META_NEXT_OFF);
}

/* The first valid page of the given type below the high-water mark. */
static uint32_t find_page(const char *db, uint8_t type)
{
    uint8_t pg[PS];
    if (type == PG_META)
        return PG_META_PGNO;
    uint32_t hwm = hwm_of(db);
    for (uint32_t p = PG_FIRST_DATA; p < hwm; p++) {
        read_page(db, p, pg);
        if (pg_verify(pg, PS, p) == PG_OK && pg_type(pg) == type)
            return p;
    }
    cr_assert_fail("%s has no page of type %u below its high-water mark %u", db, type, hwm);
    return 0;
}

enum damage { ZERO, FLIP };

static void damage_page(const char *db, uint32_t pgno, enum damage how)
{
    uint8_t pg[PS];
    if (how == ZERO) {
        memset(pg, 0, PS);
    } else {
        read_page(db, pgno, pg);
        pg[PS / 2] ^= 0x5a;   /* inside every page type's checksummed bytes */
    }
    write_page(db, pgno, pg);
}

static const struct {
    uint8_t type;
    const char *name;
} KINDS[] = {
    { PG_LEAF, "leaf" }, { PG_BRANCH, "branch" }, { PG_OVERFLOW, "overflow" }, { PG_FREE, "free-list" },
    { PG_META, "meta" },
};
#define NKINDS (sizeof KINDS / sizeof KINDS[0])

/* "page N of " plus, for a zeroed page, "zeroed". */
static void assert_names_page(const char *what, uint32_t pgno, enum damage how)
{
    char want[64];
    snprintf(want, sizeof want, "page %u of ", pgno);
    const char *d = js_errdetail();
    cr_assert_not_null(strstr(d, want), "%s: detail '%s' does not name page %u", what, d, pgno);
    if (how == ZERO)
        cr_assert_not_null(strstr(d, "zeroed"), "%s: detail '%s' does not say zeroed", what, d);
}

/* A refused restore leaves TARGET missing, empty, or not openable
 * (being-restored): never an instance. */
static void assert_target_unusable(const char *target)
{
    if (!tl_exists(target))
        return;
    char db[PATH_MAX];
    snprintf(db, sizeof db, "%s/jetsnap.edb", target);
    if (tl_exists(db)) {
        js_info info;
        OK(js_info_read(target, &info));
        cr_assert_eq(info.state, JS_DB_BEING_RESTORED, "a refused restore left %s in state %d", target, info.state);
    }
    js_params p = tl_test_params();
    js_instance *inst = NULL;
    cr_assert_neq(js_open(target, &p, &inst), JET_errSuccess, "a refused restore left %s openable", target);
}

/* ================================================================== */
/* The live file                                                         */
/* ================================================================== */

/* A used page zeroed or bit-flipped in the live file of a quiet instance:
 * `check` of the open instance (dirty, bound from edb.chk), the next full
 * backup, and `check` of the closed instance (clean, bound = high-water
 * mark) and of its lone .edb all refuse with -1018 naming the page.
 * Before the fix a zeroed page passed the backup and the open check. */
Test(pages, live_damage_refused_by_backup_and_check, .timeout = 120)
{
    js_instance *tmpl = make_instance(tl_tp("tmpl"));
    OK(js_close(tmpl));
    for (size_t k = 0; k < NKINDS; k++) {
        for (int how = ZERO; how <= FLIP; how++) {
            char *dir = tl_tp("live_%zu_%d", k, how), *db = tl_tp("live_%zu_%d/jetsnap.edb", k, how);
            cr_assert_eq(tl_sh("cp -a '%s' '%s'", tl_tp("tmpl"), dir), 0);
            js_instance *inst = tl_reopen(dir);
            OK(js_checkpoint(inst));
            uint32_t pg = find_page(db, KINDS[k].type);
            damage_page(db, pg, (enum damage)how);
            char what[128];
            snprintf(what, sizeof what, "%s page %u %s", KINDS[k].name, pg, how == ZERO ? "zeroed" : "flipped");

            js_check_report rep;
            FAILS_WITH(js_check(dir, &rep), JET_errReadVerifyFailure);
            assert_names_page(what, pg, (enum damage)how);
            cr_assert_eq(rep.first_bad_page, pg, "%s: check reports page %u first", what, rep.first_bad_page);

            FAILS_WITH(js_backup(inst, tl_tp("bk_%zu_%d", k, how), JS_BACKUP_CREATE_DIR, NULL, NULL),
                         JET_errReadVerifyFailure);
            assert_names_page(what, pg, (enum damage)how);
            cr_assert(!tl_exists(tl_tp("bk_%zu_%d", k, how)) || tl_sh("test -z \"$(ls -A '%s')\"", tl_tp("bk_%zu_%d", k, how)) == 0,
                      "%s: the failed backup left files", what);
            OK(js_close(inst));

            FAILS_WITH(js_check(dir, NULL), JET_errReadVerifyFailure);
            assert_names_page(what, pg, (enum damage)how);
            FAILS_WITH(js_check(db, NULL), JET_errReadVerifyFailure);
            assert_names_page(what, pg, (enum damage)how);
        }
    }
}

/* The boundary of the rule: with a quiet instance, the last used page
 * (high-water mark - 1) zeroed fails the backup; a page at the high-water
 * mark, inside the file's extent but never allocated, may be zero: the
 * backup, check, verify and restore accept it.  Before the fix both
 * backups succeeded. */
Test(pages, zero_page_at_the_high_water_mark_boundary, .timeout = 120)
{
    js_instance *inst = make_instance(tl_tp("inst"));
    const char *db = tl_tp("inst/jetsnap.edb");
    uint32_t hwm = hwm_of(db);
    cr_assert_lt(hwm, file_pages(db), "the file's extent ends at the high-water mark %u", hwm);

    /* Unallocated: zero (as the extent already is) and accepted. */
    damage_page(db, hwm, ZERO);
    damage_page(db, file_pages(db) - 1, ZERO);
    OK(js_check(tl_tp("inst"), NULL));
    OK(js_backup(inst, tl_tp("bk"), JS_BACKUP_CREATE_DIR, NULL, NULL));
    OK(js_check(tl_tp("bk"), NULL));
    OK(js_verify(tl_tp("bk"), NULL, NULL, NULL));
    OK(js_restore(tl_tp("bk"), tl_tp("r"), NULL, 0, NULL, NULL));
    OK(js_check(tl_tp("r"), NULL));

    /* In use: refused. */
    damage_page(db, hwm - 1, ZERO);
    FAILS_WITH(js_backup(inst, tl_tp("bk2"), JS_BACKUP_CREATE_DIR, NULL, NULL), JET_errReadVerifyFailure);
    assert_names_page("page hwm-1 zeroed", hwm - 1, ZERO);
    FAILS_WITH(js_check(tl_tp("inst"), NULL), JET_errReadVerifyFailure);
    assert_names_page("page hwm-1 zeroed", hwm - 1, ZERO);
    OK(js_close(inst));
}

/* ================================================================== */
/* A backup set                                                          */
/* ================================================================== */

/* A used page zeroed or bit-flipped in a set's jetsnap.edb, SHA256SUMS
 * fixed to match: check, verify and restore all refuse with -1018 naming
 * the page, and the refused restore leaves nothing that opens.  Before
 * the fix a zeroed page passed all three, and a flipped one passed
 * restore. */
Test(pages, set_damage_refused_by_check_verify_restore, .timeout = 120)
{
    js_instance *inst = make_instance(tl_tp("inst"));
    make_full_set(inst, tl_tp("tmpl"));
    OK(js_close(inst));
    for (size_t k = 0; k < NKINDS; k++) {
        for (int how = ZERO; how <= FLIP; how++) {
            char *set = tl_tp("set_%zu_%d", k, how), *db = tl_tp("set_%zu_%d/jetsnap.edb", k, how);
            char *target = tl_tp("r_%zu_%d", k, how);
            cr_assert_eq(tl_sh("cp -a '%s' '%s'", tl_tp("tmpl"), set), 0);
            uint32_t pg = find_page(db, KINDS[k].type);
            damage_page(db, pg, (enum damage)how);
            regen_sums_checked(set);
            char what[128];
            snprintf(what, sizeof what, "set: %s page %u %s", KINDS[k].name, pg, how == ZERO ? "zeroed" : "flipped");

            FAILS_WITH(js_check(set, NULL), JET_errReadVerifyFailure);
            assert_names_page(what, pg, (enum damage)how);
            FAILS_WITH(js_verify(set, NULL, NULL, NULL), JET_errReadVerifyFailure);
            assert_names_page(what, pg, (enum damage)how);
            FAILS_WITH(js_restore(set, target, NULL, 0, NULL, NULL), JET_errReadVerifyFailure);
            assert_names_page(what, pg, (enum damage)how);
            assert_target_unusable(target);
            /* Into an existing empty target too. */
            cr_assert_eq(mkdir(target, 0700), 0);
            FAILS_WITH(js_restore(set, target, NULL, 0, NULL, NULL), JET_errReadVerifyFailure);
            assert_target_unusable(target);
        }
    }
}

/* CRC32C (Castagnoli), bitwise: the page checksum of core/page.c. */
static uint32_t crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
    }
    return ~crc;
}

/* A set made before the header recorded its written bound (valid_below 0:
 * zero pages in the copy are accepted as they are copied).  A zeroed used
 * leaf is still caught: after replay, restore checks every page below the
 * final high-water mark that the copy's bound did not cover.  Before the
 * fix the restore succeeded and left a database whose dump fails. */
Test(pages, set_without_bound_restore_checks_after_replay, .timeout = 120)
{
    js_instance *inst = make_instance(tl_tp("inst"));
    make_full_set(inst, tl_tp("bk"));
    OK(js_close(inst));
    const char *db = tl_tp("bk/jetsnap.edb");
    uint8_t pg[PS];
    for (uint32_t copy = 0; copy < 2; copy++) {
        read_page(db, copy, pg);
        cr_assert_eq(pg_verify(pg, PS, copy), PG_OK);
        pg_put32(pg + HDR_VALID_BELOW_OFF, 0);
        pg_put32(pg, crc32c(copy, pg + 4, PS - 4));
        cr_assert_eq(pg_verify(pg, PS, copy), PG_OK);
        write_page(db, copy, pg);
    }
    regen_sums_checked(tl_tp("bk"));
    OK(js_restore(tl_tp("bk"), tl_tp("r_ok"), NULL, 0, NULL, NULL));   /* old sets still restore */

    uint32_t leaf = find_page(db, PG_LEAF);
    damage_page(db, leaf, ZERO);
    regen_sums_checked(tl_tp("bk"));
    FAILS_WITH(js_restore(tl_tp("bk"), tl_tp("r"), NULL, 0, NULL, NULL), JET_errReadVerifyFailure);
    assert_names_page("old set, leaf zeroed", leaf, ZERO);
    assert_target_unusable(tl_tp("r"));
    FAILS_WITH(js_verify(tl_tp("bk"), NULL, NULL, NULL), JET_errReadVerifyFailure);
    assert_names_page("old set, leaf zeroed (verify)", leaf, ZERO);
}

/* ================================================================== */
/* backup.info, SHA256SUMS and the files                                 */
/* ================================================================== */

/* Edits that keep SHA256SUMS consistent (so `sha256sum -c` passes) but
 * make backup.info disagree with the set: restore and verify refuse, and
 * leave no target.  Before the fix a lowered gen_high restored quietly
 * short of the set's end, and the signature, page size, size and listing
 * edits were not noticed at all. */
Test(pages, edited_manifest_refused, .timeout = 120)
{
    js_instance *inst = make_instance(tl_tp("inst"));
    make_full_set(inst, tl_tp("orig"));
    put_range(inst, "later", 0, 400, 300);
    OK(js_backup(inst, tl_tp("orig"), JS_BACKUP_INCREMENTAL, NULL, NULL));
    OK(js_close(inst));
    uint32_t gen_low = (uint32_t)strtoul(binfo_get(tl_tp("orig"), "gen_low"), NULL, 16);
    uint32_t gen_high = (uint32_t)strtoul(binfo_get(tl_tp("orig"), "gen_high"), NULL, 16);
    uint32_t full_high = (uint32_t)strtoul(binfo_get(tl_tp("orig"), "full_gen_high"), NULL, 16);
    cr_assert_gt(gen_high, full_high, "the incremental added no generation");
    OK(js_restore(tl_tp("orig"), tl_tp("r_orig"), NULL, 0, NULL, NULL));

    char v[64], name[32];
    struct edit {
        const char *key;    /* backup.info key, or NULL: unlist a generation from SHA256SUMS */
        char value[64];
        JET_ERR want;
        char needle[64];    /* "" or what the detail must name */
    } cases[6];
    memset(cases, 0, sizeof cases);
    int n = 0;
    /* gen_high lowered to the full backup's: the incremental's
     * generations are still in the set. */
    cases[n] = (struct edit){ .key = "gen_high", .want = JET_errInvalidBackup };
    snprintf(cases[n].value, 64, "%08X", full_high);
    snprintf(cases[n++].needle, 64, "%08X", gen_high);
    cases[n] = (struct edit){ .key = "gen_low", .want = JET_errStartingRestoreLogTooHigh };
    snprintf(cases[n++].value, 64, "%08X", gen_low + 1);
    cases[n] = (struct edit){ .key = "db_signature", .want = JET_errBadDbSignature };
    snprintf(cases[n++].value, 64, "%032x", 0x1234u);
    cases[n++] = (struct edit){ .key = "page_size", .value = "8192", .want = JET_errPageSizeMismatch };
    cases[n++] = (struct edit){ .key = "pages", .value = "3", .want = JET_errInvalidBackup };
    cases[n] = (struct edit){ .key = NULL, .want = JET_errInvalidBackup };
    snprintf(cases[n++].needle, 64, "%08X", gen_low + 1);

    for (int i = 0; i < n; i++) {
        char *set = tl_tp("set%d", i), *target = tl_tp("r%d", i);
        cr_assert_eq(tl_sh("cp -a '%s' '%s'", tl_tp("orig"), set), 0);
        if (cases[i].key) {
            tl_edit_binfo(set, cases[i].key, cases[i].value);
            regen_sums_checked(set);
        } else {
            snprintf(name, sizeof name, "edb%08X.log", gen_low + 1);
            cr_assert_eq(tl_sh("cd '%s' && grep -v ' %s$' SHA256SUMS > s.tmp && mv s.tmp SHA256SUMS", set, name), 0);
            cr_assert_eq(tl_sh("cd '%s' && sha256sum -c --quiet SHA256SUMS >/dev/null 2>&1", set), 0);
        }
        snprintf(v, sizeof v, "%s edited", cases[i].key ? cases[i].key : name);
        JET_ERR e = js_restore(set, target, NULL, 0, NULL, NULL);
        cr_assert_eq(e, cases[i].want, "%s: restore -> %s (%d) [%s], expected %s", v, js_errname(e), e,
                     js_errdetail(), js_errname(cases[i].want));
        if (cases[i].needle[0])
            cr_assert_not_null(strstr(js_errdetail(), cases[i].needle), "%s: detail '%s' does not name %s", v,
                               js_errdetail(), cases[i].needle);
        assert_target_unusable(target);
        e = js_verify(set, NULL, NULL, NULL);
        cr_assert_eq(e, cases[i].want, "%s: verify -> %s (%d) [%s]", v, js_errname(e), e, js_errdetail());
    }
}

/* ================================================================== */
/* The jetsnap tool                                                      */
/* ================================================================== */

/* Exit status and stderr of `jetsnap ARGS` (stderr into *err, static). */
static int jetsnap(const char **err, const char *args)
{
    static char buf[4096];
    char bin[PATH_MAX];
    tl_build_bin(bin, "jetsnap");
    int rc = tl_sh("'%s' %s >/dev/null 2>'%s/stderr'", bin, args, tl_tmp);
    FILE *f = fopen(tl_tp("stderr"), "r");
    cr_assert_not_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    *err = buf;
    return rc;
}

/* The recipe with the tool: a zeroed used leaf in the live file
 * of a quiet instance, and in a set.  `jetsnap check` of the instance, its
 * lone .edb and the set, `jetsnap verify` and `jetsnap restore` exit 1
 * naming the page, and `jetsnap dump` refuses the restore's target.
 * Before the fix the set passed verify and restored. */
Test(pages, cli_refuses_zeroed_page, .timeout = 120)
{
    js_instance *inst = make_instance(tl_tp("inst"));
    make_full_set(inst, tl_tp("bk"));
    const char *db = tl_tp("inst/jetsnap.edb"), *err;
    uint32_t leaf = find_page(db, PG_LEAF);
    damage_page(db, leaf, ZERO);
    char want[64];
    snprintf(want, sizeof want, "page %u of ", leaf);
    char args[2 * PATH_MAX];

    snprintf(args, sizeof args, "check '%s'", tl_tp("inst"));
    cr_assert_eq(jetsnap(&err, args), 1, "%s: %s", args, err);
    cr_assert(strstr(err, "JET_errReadVerifyFailure (-1018)") && strstr(err, want) && strstr(err, "zeroed"),
              "%s: stderr '%s'", args, err);
    OK(js_close(inst));
    snprintf(args, sizeof args, "check '%s'", db);
    cr_assert_eq(jetsnap(&err, args), 1, "%s: %s", args, err);
    cr_assert(strstr(err, want) && strstr(err, "zeroed"), "%s: stderr '%s'", args, err);

    const char *sdb = tl_tp("bk/jetsnap.edb");
    uint32_t sleaf = find_page(sdb, PG_LEAF);
    damage_page(sdb, sleaf, ZERO);
    regen_sums_checked(tl_tp("bk"));
    snprintf(want, sizeof want, "page %u of ", sleaf);
    const char *cmds[] = { "check '%s'", "check '%s/jetsnap.edb'", "verify '%s'" };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        snprintf(args, sizeof args, cmds[i], tl_tp("bk"));
        cr_assert_eq(jetsnap(&err, args), 1, "%s: %s", args, err);
        cr_assert(strstr(err, "(-1018)") && strstr(err, want) && strstr(err, "zeroed"), "%s: stderr '%s'", args,
                  err);
    }
    cr_assert_eq(mkdir(tl_tp("target"), 0700), 0);
    snprintf(args, sizeof args, "restore '%s' '%s'", tl_tp("bk"), tl_tp("target"));
    cr_assert_eq(jetsnap(&err, args), 1, "%s: %s", args, err);
    cr_assert(strstr(err, "(-1018)") && strstr(err, want) && strstr(err, "zeroed"), "%s: stderr '%s'", args, err);
    snprintf(args, sizeof args, "dump '%s'", tl_tp("target"));
    cr_assert_neq(jetsnap(&err, args), 0, "dump of a refused restore's target succeeded");
    assert_target_unusable(tl_tp("target"));
}
