/*
 * test_ckpt_policy.c - when the checkpoint thread checkpoints
 * (core/instance/checkpoint.c, ckpt_due).
 *
 * A checkpoint is counted by its write of edb.chk (two copies each),
 * through the fault seam's counter.  A writer commits in a tight loop, so
 * the instance is never quiet for a whole period; the assertions are on how
 * many checkpoints happen, with margins for a stalled machine, never on how
 * long anything takes.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jetsnap.h"
#include "testlib.h"

#define PERIOD_MS 100u

static void fini(void)
{
    js_fault_reset();
}

TestSuite(ckpt_policy, .fini = fini, .timeout = 120);

static js_params policy_params(uint64_t depth)
{
    js_params p;
    js_params_default(&p);
    p.commit_mode = JS_COMMIT_LAZY;
    p.log_file_size = 256 << 10;
    p.cache_size = 64 << 20;
    p.checkpoint_ms = PERIOD_MS;
    p.checkpoint_depth = depth;
    return p;
}

/* A new instance in a scratch directory with the given depth, and a
 * session on it; the fault seam counts writes of edb.chk from here on. */
static char *ckpt_dir;
static js_instance *ckpt_inst;

static js_session *open_counting(uint64_t depth)
{
    js_params p = policy_params(depth);
    js_session *s;
    ckpt_dir = tl_tmpdir("jsckpt");
    OK(js_create(ckpt_dir, &p));
    OK(js_open(ckpt_dir, &p, &ckpt_inst));
    OK(js_session_open(ckpt_inst, &s));
    js_fault_reset();
    js_fault_arm(JS_FAULT_WRITE, 0, 0, -1, "edb.chk");
    return s;
}

static void close_counting(js_session *s)
{
    js_session_close(s);
    OK(js_close(ckpt_inst));
    cr_assert_eq(tl_rmrf(ckpt_dir), 0);
    free(ckpt_dir);
}

static uint64_t checkpoints(void)
{
    return js_fault_count(JS_FAULT_WRITE) / 2;
}

/* Overwrite 64 keys with values of vlen bytes, in a tight loop, for looks
 * periods; returns how many checkpoints ran meanwhile. */
static uint64_t write_for(js_session *s, unsigned looks, size_t vlen)
{
    char key[16], *val = malloc(vlen);
    cr_assert_not_null(val);
    uint64_t before = checkpoints();
    int64_t end = tl_now_ms() + (int64_t)looks * PERIOD_MS;
    for (unsigned i = 0; tl_now_ms() < end; i++) {
        snprintf(key, sizeof key, "k%02u", i % 64);
        memset(val, 'a' + i % 26, vlen);
        OK(js_put(s, key, strlen(key), val, vlen));
    }
    free(val);
    return checkpoints() - before;
}

/* A checkpoint writes every dirty page twice (doublewrite buffer, then in
 * place); one per period under steady writes rewrote nearly every page
 * once a period.  A writing instance below its depth waits 30 periods. */
Test(ckpt_policy, steady_writes_are_not_checkpointed_every_period)
{
    js_session *s = open_counting(1ull << 30);
    uint64_t n = write_for(s, 20, 100);
    /* One period per checkpoint would be about 20; a stall of a whole
     * period makes the instance look quiet once in a while. */
    cr_expect_leq(n, 4, "%llu checkpoints in 20 periods of steady writes", (unsigned long long)n);
    close_counting(s);
}

/* A quiet instance is still checkpointed promptly: its dirty pages reach
 * jetsnap.edb and the redo point catches up. */
Test(ckpt_policy, quiet_instance_is_checkpointed)
{
    js_session *s = open_counting(1ull << 30);
    write_for(s, 5, 100);
    uint64_t before = checkpoints();
    int64_t deadline = tl_now_ms() + 20000;
    while (checkpoints() == before && tl_now_ms() < deadline)
        tl_sleep_ms(20);
    cr_expect_gt(checkpoints(), before, "no checkpoint after the writes stopped");
    close_counting(s);
}

/* checkpoint_depth bounds the log recovery has to read, however busy the
 * instance is. */
Test(ckpt_policy, depth_reached_checkpoints_a_writing_instance)
{
    js_session *s = open_counting(512 << 10);
    /* 2 KiB values: far more than 512 KiB of log per period. */
    uint64_t n = write_for(s, 20, 2048);
    cr_expect_geq(n, 3, "only %llu checkpoints while the log grew past the depth", (unsigned long long)n);
    close_counting(s);
}
