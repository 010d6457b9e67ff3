/*
 * base.h - the base layer: what every other layer of the core stands on.
 *
 * Layers (each depends only on those before it):
 *   base      errors (err.h), the OS layer and its fault seam (os.h),
 *             CRC32C (crc32c.h), a reader's trail through the page cache
 *             (cachetrail.h), the clock, the sticky-fatal state, lock
 *             wrappers that know their holder (this file)
 *   store     page format, database file and header, range lock, buffer pool
 *   log       generation files, writer and group commit, recovery
 *   tree      copy-on-write views, the B+tree, transactions
 *   instance  lifecycle, checkpoint thread, the instance's state
 *   jobs      backup, restore, verify, manifests
 * A lower layer never calls a higher one: a fatal error travels up through
 * js_health (below), whose callbacks the instance registers.
 *
 * Locks: base owns none an outside caller sees (os.c's fault_lock is a
 * leaf).  js_mutex and js_rwlock wrap the pthread types so a function can
 * assert that its caller holds what its comment says it must:
 * JS_ASSERT_HELD / JS_ASSERT_WRLOCKED / JS_ASSERT_RDLOCKED are active unless
 * NDEBUG is defined (the default -O2 -g build and SANITIZE=1 check them);
 * with NDEBUG they and the owner bookkeeping compile to nothing.
 */
#ifndef JS_BASE_H
#define JS_BASE_H

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include "jetsnap.h"
#include "base/err.h"
#include "base/os.h"
#include "base/crc32c.h"

/* ---------------- clock ---------------- */

/* js_time_ms (wall clock, stored in files and events) and js_mono_ms
 * (durations, rates) are public: declared in jetsnap.h, defined in base.c,
 * and the programs in fs/ use them too. */
/** Wall clock in microseconds (commit records' time, --until-time). */
int64_t js_time_us(void);
/** The absolute CLOCK_REALTIME time ms from now (pthread_cond_timedwait). */
struct timespec js_deadline_ms(uint64_t ms);

/* ---------------- sorting ---------------- */

/** qsort/bsearch order of uint32_t values (page numbers). */
int js_cmp_u32(const void *a, const void *b);

/* ---------------- the one sticky-fatal state ---------------- */

/*
 * Failures are sticky or transient (the contract is in jetsnap.h; the
 * transient ones, lack of space, live in the layer that meets them: the
 * log's `full`, the instance's `space_err`).  Sticky: any I/O error but
 * ENOSPC/EDQUOT (JET_errDiskFull from os.c), a failed rename, a failed
 * fsync of jetsnap.edb whatever its errno, a logged transaction that cannot
 * be installed.  The first one is kept here; every later call of the
 * instance fails with JET_errInstanceUnavailable until it is reopened.
 * Lower layers hold a pointer to the instance's js_health and set it; the
 * instance's on_fatal callback changes its state and wakes its waiters.
 */
typedef struct js_health {
    _Atomic JET_ERR fatal;           /* 0, or the first sticky error */
    void (*on_fatal)(void *ctx, JET_ERR err);          /* once, on the first */
    void (*on_event)(void *ctx, int id, int level, const char *msg);
    void *ctx;
} js_health;

/** Set the callbacks (either may be NULL) and clear the state. */
void health_init(js_health *h, void (*on_fatal)(void *, JET_ERR),
                 void (*on_event)(void *, int, int, const char *), void *ctx);
/** Make the state fatal with err (0: JET_errInstanceUnavailable) unless it
 *  already is; the first caller runs on_fatal.  Returns the sticky error.
 *  Never called with a lack of space.  May be called holding any lock but
 *  the instance's state_lock (on_fatal takes it). */
JET_ERR health_set_fatal(js_health *h, JET_ERR err);
/** The sticky error, or 0.  Lock-free. */
static inline JET_ERR health_fatal(js_health *h)
{
    return atomic_load_explicit(&h->fatal, memory_order_acquire);
}
/** Format an event and hand it to on_event (nothing when it is NULL).
 *  Called holding no lock of the caller's layer. */
void health_event(js_health *h, int id, int level, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/** Lack of space (transient, never sticky). */
static inline int err_is_space(JET_ERR err)
{
    return err == JET_errDiskFull || err == JET_errLogDiskFull;
}

/* ---------------- locks that know their holder ---------------- */

#ifndef NDEBUG
/* The address of a thread-local byte: a unique, cheap id of this thread. */
extern _Thread_local char js_thread_tag;
#define JS_SELF ((const void *)&js_thread_tag)
#endif

typedef struct js_mutex {
    pthread_mutex_t m;
#ifndef NDEBUG
    _Atomic(const void *) owner;     /* JS_SELF of the holder, NULL when free */
#endif
} js_mutex;

typedef struct js_rwlock {
    pthread_rwlock_t l;
#ifndef NDEBUG
    _Atomic(const void *) writer;    /* JS_SELF of an exclusive holder */
#endif
} js_rwlock;

#ifndef NDEBUG
#define JS_OWN_(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
#else
#define JS_OWN_(p, v) ((void)0)
#endif

static inline void js_mutex_init(js_mutex *x)
{
    pthread_mutex_init(&x->m, NULL);
    JS_OWN_(&x->owner, NULL);
}
static inline void js_mutex_destroy(js_mutex *x) { pthread_mutex_destroy(&x->m); }
static inline void js_mutex_lock(js_mutex *x)
{
    pthread_mutex_lock(&x->m);
    JS_OWN_(&x->owner, JS_SELF);
}
static inline void js_mutex_unlock(js_mutex *x)
{
    JS_OWN_(&x->owner, NULL);
    pthread_mutex_unlock(&x->m);
}
static inline void js_cond_wait(pthread_cond_t *c, js_mutex *x)
{
    JS_OWN_(&x->owner, NULL);
    pthread_cond_wait(c, &x->m);
    JS_OWN_(&x->owner, JS_SELF);
}
static inline int js_cond_timedwait(pthread_cond_t *c, js_mutex *x, const struct timespec *ts)
{
    JS_OWN_(&x->owner, NULL);
    int rc = pthread_cond_timedwait(c, &x->m, ts);
    JS_OWN_(&x->owner, JS_SELF);
    return rc;
}

static inline void js_rwlock_init(js_rwlock *x)
{
    pthread_rwlock_init(&x->l, NULL);
    JS_OWN_(&x->writer, NULL);
}
static inline void js_rwlock_destroy(js_rwlock *x) { pthread_rwlock_destroy(&x->l); }
static inline void js_rdlock(js_rwlock *x) { pthread_rwlock_rdlock(&x->l); }
static inline void js_wrlock(js_rwlock *x)
{
    pthread_rwlock_wrlock(&x->l);
    JS_OWN_(&x->writer, JS_SELF);
}
static inline void js_rwunlock(js_rwlock *x)
{
#ifndef NDEBUG
    /* Only the exclusive holder clears it; a reader leaves it NULL. */
    const void *me = JS_SELF;
    atomic_compare_exchange_strong(&x->writer, &me, NULL);
#endif
    pthread_rwlock_unlock(&x->l);
}

#ifndef NDEBUG
/** This thread holds x. */
#define JS_ASSERT_HELD(x) assert(atomic_load_explicit(&(x)->owner, memory_order_relaxed) == JS_SELF)
/** This thread does not hold x (it is about to take it, or to block). */
#define JS_ASSERT_NOT_HELD(x) assert(atomic_load_explicit(&(x)->owner, memory_order_relaxed) != JS_SELF)
/** This thread holds x exclusively. */
#define JS_ASSERT_WRLOCKED(x) assert(atomic_load_explicit(&(x)->writer, memory_order_relaxed) == JS_SELF)
/** x is held, shared or exclusive (shared holders are not recorded, so
 *  this checks that some thread holds it: a caller that forgot the latch
 *  is caught whenever no other thread happens to hold it). */
#define JS_ASSERT_RDLOCKED(x) assert(js_rwlock_held_(x))
static inline int js_rwlock_held_(js_rwlock *x)
{
    if (atomic_load_explicit(&x->writer, memory_order_relaxed) == JS_SELF)
        return 1;
    if (pthread_rwlock_trywrlock(&x->l) != 0)
        return 1;
    pthread_rwlock_unlock(&x->l);
    return 0;
}
#else
#define JS_ASSERT_HELD(x) ((void)0)
#define JS_ASSERT_NOT_HELD(x) ((void)0)
#define JS_ASSERT_WRLOCKED(x) ((void)0)
#define JS_ASSERT_RDLOCKED(x) ((void)0)
#endif

#endif
