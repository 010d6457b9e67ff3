/*
 * loop.c - the event loop of the Redis front, with protocol-level group
 * commit.
 *
 * One loop thread owns every connection: epoll tells it which are ready; in
 * one turn it reads each ready connection once, parses every complete
 * command in what arrived (pipelines included; the parser keeps a half
 * request across turns) and runs the commands of the whole turn in one
 * engine transaction (the batch, cmd_batch in commands.h), each behind its
 * own savepoint, so a failing command is undone alone.  The batch is opened
 * by the turn's first write and committed lazily (visible, not yet durable)
 * at the end of the turn, or earlier once it holds SRV_BATCH_CMDS commands
 * or SRV_BATCH_BYTES of arguments: each page the batch touches is copied,
 * logged and installed once, not once per command.  Each reply is tagged
 * with the log position it depends on: a reply given while the batch is
 * open waits for the batch's commit (its position is filled in when the
 * batch commits; if the commit fails, every such reply becomes that error),
 * anything else for the last commit the loop made (a read may have seen
 * it).  At the end of the turn the loop asks the committer thread to make the log
 * durable up to the turn's last position (one log write and one fsync for
 * every client's commands), and sends only the replies whose position is
 * already durable.  While the committer flushes, the loop goes on with the
 * next turn, so the two cores overlap: parsing and executing one batch while
 * the previous one reaches the disk.  (A turn of at most
 * SRV_INLINE_FLUSH_CMDS commands, with no flush in flight, is flushed by
 * the loop itself: there is little to overlap, and two thread hand-offs
 * are saved.)  When the committer reports, the held replies up to the new
 * durable position are sent; if the flush failed
 * (JET_errLogDiskFull, JET_errLogWriteFail) every reply it carried becomes
 * that error instead.  With commit=lazy nothing is held.
 *
 * Because one thread runs every command, each command is isolated by
 * construction and atomic through its savepoint (a failing one is rolled
 * back to it and touches nobody else's work), a client's commands run in
 * order, and an EXEC is one savepoint unit in the batch (commands.c).  No
 * transaction stays open across turns: other threads (the live view,
 * backups, snapshots, the checkpoint) see only committed batches, and wait
 * at most one turn for the writer lock.
 *
 * Bounds: maxclients connections; per connection, one request at a time is
 * capped by the parser, and a client whose unread replies pass
 * SRV_OUT_SOFT is not read any further (the rest of its input waits, as
 * Redis's clients wait on TCP) until it reads; past SRV_CLIENT_OUTPUT_MAX
 * it is closed.  Every connection's buffers are charged to buf_total; past
 * client_buffer_total the connections holding the most are closed with an
 * error.  Idle connections are closed after `timeout` seconds.
 *
 * Threads and locks: the loop thread alone touches connections, sessions
 * and the loop fields of srv_server.  The committer only calls
 * js_wait_durable and reports through commit_lock and wake_fd.
 */
#include "srv_int.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "resp.h"

#define SRV_READ_CHUNK   (64 * 1024)
#define SRV_OUT_SOFT     (1024 * 1024)   /* stop reading a client past this */
#define SRV_EVENTS       256
#define SRV_INLINE_FLUSH_CMDS 128 /* request_flush: a turn the loop flushes itself */
#define SRV_ACCEPT_BURST 64
/* Commit the batch past these.  Chosen when commit compared every page
 * with its committed frame, to find them still in the CPU's cache (64
 * pages of 8 KiB and their frames: 1 MiB).  Since changes report their
 * bytes (tree/tview.h) the size matters little: 64, 256 and 1024 measured
 * alike (loop thread CPU per SET, pipeline 16, 50 clients).  A pipeline 16
 * turn of 50 clients is a dozen commits, and still one log flush. */
#define SRV_BATCH_CMDS   64
#define SRV_BATCH_BYTES  (8u * 1024 * 1024)

/* A reply tagged with the open batch: its position is known at commit. */
#define POS_BATCH UINT64_MAX

/* epoll tags for the two eventfds and the listeners (connections carry
 * their srv_conn pointer). */
#define TAG_STOP  ((uint64_t)1)
#define TAG_WAKE  ((uint64_t)2)
#define TAG_LIS   ((uint64_t)3)   /* + listener index * 4 */

/* Reply bytes of out up to `end` wait for the log up to `pos`. */
typedef struct srv_held {
    size_t end;
    uint64_t pos;
} srv_held;

typedef struct srv_conn {
    struct srv_conn *next, *prev;    /* srv->conns */
    struct srv_conn *pnext, *pprev;  /* srv->pending, when in_pending */
    struct srv_conn *tnext;          /* srv->touched or srv->dead */
    struct srv_conn *bnext;          /* srv->batch_conns, when in_batch */
    int in_pending, in_touched, dead, in_batch;
    int fd;
    uint32_t events;                 /* registered with epoll */
    resp_parser parser;
    resp_buf out;
    cmd_conn cc;
    size_t sent;                     /* bytes of out already sent */
    size_t ready;                    /* bytes of out that may be sent */
    srv_held *held;                  /* held[first..n): not yet durable */
    size_t held_first, held_n, held_cap;
    char *rest;                      /* input not parsed yet (back-pressure) */
    size_t rest_off, rest_len;
    int closing;                     /* close once ready bytes are sent */
    time_t last_active;
    size_t charged;                  /* bytes counted in srv->buf_total */
} srv_conn;

static time_t now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

/* INFO's clients and stats lines (run by the loop thread, like every
 * command, so the counters are read without a lock). */
static size_t server_info(void *ctx, const char *section, char *buf, size_t cap)
{
    srv_server *srv = ctx;
    int n;
    if (strcmp(section, "clients") == 0)
        n = snprintf(buf, cap, "connected_clients:%zu\r\nmaxclients:%zu\r\n"
                               "client_buffers_bytes:%zu\r\nclient_buffer_total:%zu\r\n",
                     srv->nconns, srv->lim.maxclients, srv->buf_total, srv->lim.client_buffer_total);
    else {
        /* Commands in the last whole second. */
        time_t now = now_sec();
        uint64_t ops = now == srv->ops_sec ? srv->ops_last : now == srv->ops_sec + 1 ? srv->ops_cur : 0;
        n = snprintf(buf, cap, "total_commands_processed:%llu\r\ninstantaneous_ops_per_sec:%llu\r\n"
                               "group_commit_flushes:%llu\r\neventloop_cycles:%llu\r\n",
                     (unsigned long long)srv->ncommands, (unsigned long long)ops,
                     (unsigned long long)srv->nflushes, (unsigned long long)srv->turn);
    }
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

static size_t client_bytes(void *ctx)
{
    const srv_server *srv = ctx;
    return srv->buf_total;
}

/* ------------------------------------------------------------------ */
/* Accounting and lists                                                 */
/* ------------------------------------------------------------------ */

static size_t conn_bytes(const srv_conn *c)
{
    return resp_parser_bytes(&c->parser) + c->out.cap + c->rest_len +
           c->held_cap * sizeof(srv_held) + c->cc.queue_bytes;
}

static void recharge(srv_server *srv, srv_conn *c)
{
    size_t b = c->dead ? 0 : conn_bytes(c);
    srv->buf_total = srv->buf_total - c->charged + b;
    c->charged = b;
}

static void touch(srv_server *srv, srv_conn *c)
{
    if (c->in_touched || c->dead)
        return;
    c->in_touched = 1;
    c->tnext = srv->touched;
    srv->touched = c;
}

static void pending_add(srv_server *srv, srv_conn *c)
{
    if (c->in_pending)
        return;
    c->in_pending = 1;
    c->pprev = NULL;
    c->pnext = srv->pending;
    if (srv->pending)
        srv->pending->pprev = c;
    srv->pending = c;
}

static void pending_del(srv_server *srv, srv_conn *c)
{
    if (!c->in_pending)
        return;
    if (c->pprev)
        c->pprev->pnext = c->pnext;
    else
        srv->pending = c->pnext;
    if (c->pnext)
        c->pnext->pprev = c->pprev;
    c->in_pending = 0;
}

/* Close now: the descriptor and session go at once, the struct at the end
 * of the turn (lists walked in this turn may still point at it). */
static void conn_kill(srv_server *srv, srv_conn *c)
{
    if (c->dead)
        return;
    c->dead = 1;
    pending_del(srv, c);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->nconns--;
    /* Explicitly: close() alone leaves the registration while a forked
     * child still holds a copy of the descriptor, and epoll would go on
     * reporting a connection that is freed. */
    epoll_ctl(srv->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    cmd_conn_free(&c->cc);
    resp_parser_free(&c->parser);
    resp_buf_free(&c->out);
    free(c->held);
    c->held = NULL;
    c->held_cap = c->held_n = c->held_first = 0;
    free(c->rest);
    c->rest = NULL;
    c->rest_len = c->rest_off = 0;
    recharge(srv, c);
    if (!c->in_touched) {
        c->in_touched = 1;
        c->tnext = srv->dead;
        srv->dead = c;
    }
}

/* Best effort: a last error line to a client being closed by force. */
static void conn_say(srv_conn *c, const char *line)
{
    ssize_t n = send(c->fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)n;
}

/* ------------------------------------------------------------------ */
/* Replies: held for the log, released, failed                          */
/* ------------------------------------------------------------------ */

static int hold(srv_server *srv, srv_conn *c, size_t end, uint64_t pos)
{
    if (c->held_first == c->held_n && pos <= srv->durable) {
        c->ready = end;
        return 0;
    }
    if (c->held_n == c->held_cap) {
        if (c->held_first > 0) {
            memmove(c->held, c->held + c->held_first, (c->held_n - c->held_first) * sizeof *c->held);
            c->held_n -= c->held_first;
            c->held_first = 0;
        } else {
            size_t ncap = c->held_cap ? c->held_cap * 2 : 16;
            srv_held *nh = realloc(c->held, ncap * sizeof *nh);
            if (!nh)
                return -1;
            c->held = nh;
            c->held_cap = ncap;
        }
    }
    c->held[c->held_n].end = end;
    c->held[c->held_n].pos = pos;
    c->held_n++;
    pending_add(srv, c);
    return 0;
}

/* Replace the replies held[from..to) by one error line each (the log, or
 * the batch's commit, failed with err).  Returns -1 when the connection
 * had to be closed (out of memory). */
static int fail_replies(srv_server *srv, srv_conn *c, size_t from, size_t to, JET_ERR err, const char *what)
{
    size_t start = from > c->held_first ? c->held[from - 1].end : c->ready;
    size_t old_end = c->held[to - 1].end;
    resp_buf nb;
    resp_buf_init(&nb);
    resp_add_raw(&nb, c->out.p, start);
    for (size_t k = from; k < to; k++) {
        resp_add_error(&nb, "ERR %s (%d): %s: %s", js_errname(err), err, js_errmsg(err), what);
        c->held[k].end = nb.len;
    }
    size_t new_end = nb.len;
    resp_add_raw(&nb, c->out.p + old_end, c->out.len - old_end);
    if (nb.oom) {
        resp_buf_free(&nb);
        conn_kill(srv, c);
        return -1;
    }
    for (size_t k = to; k < c->held_n; k++)
        c->held[k].end = c->held[k].end - old_end + new_end;
    resp_buf_free(&c->out);
    c->out = nb;
    return 0;
}

static void release(srv_server *srv, srv_conn *c, uint64_t fail_upto, JET_ERR fail_err)
{
    while (c->held_first < c->held_n && c->held[c->held_first].pos <= srv->durable)
        c->ready = c->held[c->held_first++].end;
    if (fail_err) {
        size_t i = c->held_first;
        while (i < c->held_n && c->held[i].pos <= fail_upto)
            i++;
        if (i > c->held_first) {
            if (fail_replies(srv, c, c->held_first, i, fail_err, "the log could not be made durable"))
                return;
            c->ready = c->held[i - 1].end;
            c->held_first = i;
        }
    }
    if (c->held_first == c->held_n) {
        c->held_first = c->held_n = 0;
        pending_del(srv, c);
    }
    touch(srv, c);
}

/* The log is durable up to done, or a flush up to fail_upto failed with
 * fail_err: release (or fail) the held replies. */
static void settle(srv_server *srv, uint64_t done, uint64_t fail_upto, JET_ERR fail_err)
{
    if (done > srv->durable)
        srv->durable = done;
    if (fail_err && fail_upto > srv->failed_upto)
        srv->failed_upto = fail_upto;
    srv_conn *next;
    for (srv_conn *c = srv->pending; c; c = next) {
        next = c->pnext;
        release(srv, c, fail_upto, fail_err);
    }
}

/* The committer reported. */
static void committer_report(srv_server *srv)
{
    uint64_t v;
    ssize_t r = read(srv->wake_fd, &v, sizeof v);
    (void)r;
    pthread_mutex_lock(&srv->commit_lock);
    uint64_t done = srv->done_pos, fail_upto = srv->fail_upto;
    JET_ERR fail_err = srv->fail_err;
    srv->fail_err = 0;
    pthread_mutex_unlock(&srv->commit_lock);
    settle(srv, done, fail_upto, fail_err);
}

static void *committer_main(void *arg)
{
    srv_server *srv = arg;
    pthread_mutex_lock(&srv->commit_lock);
    for (;;) {
        if (srv->commit_stop)
            break;
        uint64_t target = srv->want;
        /* Nothing new to flush (a failed target waits for a later one). */
        if (target <= srv->done_pos || target <= srv->fail_upto) {
            pthread_cond_wait(&srv->commit_cond, &srv->commit_lock);
            continue;
        }
        srv->flushing = 1;
        pthread_mutex_unlock(&srv->commit_lock);
        uint64_t durable = 0;
        JET_ERR err = js_wait_durable(srv->inst, target, &durable);
        pthread_mutex_lock(&srv->commit_lock);
        srv->flushing = 0;
        if (err == JET_errSuccess) {
            if (durable < target)
                durable = target;
            if (durable > srv->done_pos)
                srv->done_pos = durable;
        } else {
            srv->fail_upto = target;
            srv->fail_err = err;
        }
        uint64_t one = 1;
        ssize_t w = write(srv->wake_fd, &one, sizeof one);
        (void)w;
    }
    pthread_mutex_unlock(&srv->commit_lock);
    return NULL;
}

static void request_flush(srv_server *srv)
{
    if (srv->lim.commit_lazy || srv->last_pos <= srv->requested || srv->last_pos <= srv->durable)
        return;
    srv->requested = srv->last_pos;
    srv->nflushes++;
    pthread_mutex_lock(&srv->commit_lock);
    int idle = !srv->flushing;
    pthread_mutex_unlock(&srv->commit_lock);
    if (idle && srv->turn_cmds <= SRV_INLINE_FLUSH_CMDS) {
        /* A small turn and nothing in flight: the next turn has little to
         * overlap with the flush, so flush here and spare the two thread
         * hand-offs (redis-server's way).  A large turn (pipelines) leaves
         * the flush to the committer and goes on parsing.  Measured with
         * 100-byte SETs against handing every turn with several writers
         * over: 200 clients +10%, 50 clients +7%, pipeline 16 -2% (-5%
         * when every idle turn was flushed here). */
        uint64_t durable = 0, target = srv->last_pos;
        JET_ERR err = js_wait_durable(srv->inst, target, &durable);
        if (err == JET_errSuccess)
            settle(srv, durable > target ? durable : target, 0, 0);
        else
            settle(srv, 0, target, err);
        return;
    }
    pthread_mutex_lock(&srv->commit_lock);
    srv->want = srv->last_pos;
    pthread_cond_signal(&srv->commit_cond);
    pthread_mutex_unlock(&srv->commit_lock);
}

/* ------------------------------------------------------------------ */
/* Input: parse and run                                                 */
/* ------------------------------------------------------------------ */

static size_t unsent(const srv_conn *c)
{
    return c->out.len - c->sent;
}

/* What a reply that committed nothing waits for: the last commit the
 * loop made (the command may have seen it), unless that one is settled
 * already, durable or failed (whose replies were the error: nothing would
 * ever flush it again). */
static uint64_t read_tag(const srv_server *srv)
{
    if (srv->lim.commit_lazy || srv->last_pos <= srv->durable || srv->last_pos <= srv->failed_upto)
        return 0;
    return srv->last_pos;
}

/* The tag of a reply given now. */
static uint64_t reply_tag(const srv_server *srv)
{
    return srv->batch.open ? POS_BATCH : read_tag(srv);
}

/* Commit the open batch (lazily: the end of the turn makes it durable)
 * and give the replies tagged with it their position, or on failure turn
 * them into the error: nothing of the batch was applied then. */
static void batch_commit(srv_server *srv)
{
    if (!srv->batch.open)
        return;
    uint64_t pos = 0;
    JET_ERR err = js_txn_commit_pos(srv->batch.sess, JS_COMMIT_FLAG_LAZY, &pos);
    srv->batch.open = 0;
    srv->batch_cmds = srv->batch_bytes = 0;
    if (!err && pos > srv->last_pos)
        srv->last_pos = pos;
    /* A batch that changed nothing logs nothing: its replies wait like a
     * read's. */
    uint64_t tag = err ? read_tag(srv) : srv->lim.commit_lazy ? 0 : pos ? pos : read_tag(srv);
    srv_conn *next;
    for (srv_conn *c = srv->batch_conns; c; c = next) {
        next = c->bnext;
        c->in_batch = 0;
        c->bnext = NULL;
        if (c->dead)
            continue;
        size_t k = c->held_first;
        while (k < c->held_n && c->held[k].pos != POS_BATCH)
            k++;
        if (err && k < c->held_n &&
            fail_replies(srv, c, k, c->held_n, err, "the batch of commands could not be committed"))
            continue;
        for (; k < c->held_n; k++)
            c->held[k].pos = tag;
        release(srv, c, 0, 0);
    }
    srv->batch_conns = NULL;
}

static void run_command(srv_server *srv, srv_conn *c)
{
    size_t argc = resp_argc(&c->parser), bytes = 0;
    const resp_arg *argv = resp_argv(&c->parser);
    for (size_t i = 0; i < argc; i++)
        bytes += argv[i].len;
    if (srv->batch.open && (srv->batch_cmds >= SRV_BATCH_CMDS || srv->batch_bytes + bytes > SRV_BATCH_BYTES))
        batch_commit(srv);
    c->cc.commit_pos = 0;
    cmd_execute(&c->cc, argc, argv);
    srv->ncommands++;
    time_t now = srv->now;
    if (now != srv->ops_sec) {
        /* The count of the last whole second (0 after an idle gap). */
        srv->ops_last = now == srv->ops_sec + 1 ? srv->ops_cur : 0;
        srv->ops_cur = 0;
        srv->ops_sec = now;
    }
    srv->ops_cur++;
    if (srv->batch.open) {
        srv->batch_cmds++;
        srv->batch_bytes += bytes;
        if (!c->in_batch) {
            c->in_batch = 1;
            c->bnext = srv->batch_conns;
            srv->batch_conns = c;
        }
        srv->turn_cmds++;
    }
    if (c->out.oom || hold(srv, c, c->out.len, reply_tag(srv)) != 0) {
        conn_kill(srv, c);
        return;
    }
    if (c->cc.quit)
        c->closing = 1;
}

/* A pipeline's keys, looked up ahead (js_prefetch): its commands' leaves
 * then come from memory together rather than one miss after another.
 * Worth it from a few commands on: each key's branch pages are walked
 * twice.  Returns how many whole commands it looked at (prefetched or
 * not), so the buffer is not scanned again before they have run. */
#define SRV_PREFETCH_MIN 4
#define SRV_PREFETCH_MAX 32

static size_t prefetch_pipeline(srv_server *srv, srv_conn *c, const char *buf, size_t len)
{
    resp_arg args[SRV_PREFETCH_MAX];
    js_keyref keys[SRV_PREFETCH_MAX];
    size_t n = resp_peek_keys(&c->parser, buf, len, args, SRV_PREFETCH_MAX);
    if (n < SRV_PREFETCH_MIN)
        return n;
    for (size_t i = 0; i < n; i++) {
        keys[i].key = args[i].p;
        keys[i].klen = args[i].len;
    }
    /* Only a hint: the commands meet, and answer, any error it finds. */
    (void)js_prefetch(srv->batch.sess, keys, n);
    return n;
}

/* Parse and run what buf holds; keep what back-pressure leaves unread.
 * Returns -1 when the connection was closed. */
static int feed(srv_server *srv, srv_conn *c, const char *buf, size_t len)
{
    size_t off = 0, ahead = 0;   /* commands the last look-ahead saw, not yet run */
    while (off < len && !c->closing) {
        if (unsent(c) >= SRV_OUT_SOFT) {
            size_t left = len - off;
            char *r = malloc(left);
            if (!r) {
                conn_kill(srv, c);
                return -1;
            }
            memcpy(r, buf + off, left);
            free(c->rest);
            c->rest = r;
            c->rest_off = 0;
            c->rest_len = left;
            return 0;
        }
        if (ahead == 0)
            ahead = prefetch_pipeline(srv, c, buf + off, len - off);
        size_t used = 0;
        int pr = resp_parse(&c->parser, buf + off, len - off, &used);
        off += used;
        if (pr == RESP_NEED)
            break;
        if (pr == RESP_PROTO) {
            /* Redis's habit: answer the error, then close this connection
             * only (after the replies before it). */
            resp_add_error(&c->out, "ERR %s", resp_errmsg(&c->parser));
            c->closing = 1;
            if (c->out.oom || hold(srv, c, c->out.len, reply_tag(srv))) {
                conn_kill(srv, c);
                return -1;
            }
            break;
        }
        run_command(srv, c);
        if (ahead)
            ahead--;
        if (c->dead)
            return -1;
        if (unsent(c) > SRV_CLIENT_OUTPUT_MAX) {
            conn_say(c, "-ERR reply buffer over its limit; closing\r\n");
            conn_kill(srv, c);
            return -1;
        }
    }
    return 0;
}

/* Continue with input kept back by back-pressure. */
static void resume(srv_server *srv, srv_conn *c)
{
    if (!c->rest || c->dead || c->closing || unsent(c) >= SRV_OUT_SOFT)
        return;
    char *r = c->rest;
    size_t off = c->rest_off, len = c->rest_len;
    c->rest = NULL;
    c->rest_len = c->rest_off = 0;
    feed(srv, c, r + off, len - off);
    free(r);
    touch(srv, c);
}

static void conn_input(srv_server *srv, srv_conn *c)
{
    if (c->rest || c->closing || unsent(c) >= SRV_OUT_SOFT)
        return;
    ssize_t n = recv(c->fd, srv->rbuf, SRV_READ_CHUNK, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        conn_kill(srv, c); /* client gone; a half-read request is dropped */
        return;
    }
    c->last_active = srv->now;
    feed(srv, c, srv->rbuf, (size_t)n);
    touch(srv, c);
}

/* ------------------------------------------------------------------ */
/* Output                                                               */
/* ------------------------------------------------------------------ */

static void set_events(srv_server *srv, srv_conn *c)
{
    uint32_t want = 0;
    if (!c->rest && !c->closing && unsent(c) < SRV_OUT_SOFT)
        want |= EPOLLIN;
    if (c->sent < c->ready)
        want |= EPOLLOUT;
    if (want == c->events)
        return;
    struct epoll_event ev = { .events = want, .data.ptr = c };
    if (epoll_ctl(srv->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->events = want;
}

static void conn_flush(srv_server *srv, srv_conn *c)
{
    while (c->sent < c->ready) {
        ssize_t n = send(c->fd, c->out.p + c->sent, c->ready - c->sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            conn_kill(srv, c);
            return;
        }
        c->sent += (size_t)n;
    }
    if (c->sent == c->out.len) {
        resp_buf_reset(&c->out);
        c->sent = c->ready = 0;
    } else if (c->sent == c->ready && c->sent >= SRV_READ_CHUNK) {
        /* Drop what was sent so a long pipeline does not keep it. */
        size_t s = c->sent;
        memmove(c->out.p, c->out.p + s, c->out.len - s);
        c->out.len -= s;
        for (size_t i = c->held_first; i < c->held_n; i++)
            c->held[i].end -= s;
        c->sent = c->ready = 0;
    }
    if (c->closing && c->held_first == c->held_n && c->sent == c->out.len) {
        conn_kill(srv, c);
        return;
    }
    resume(srv, c);
    if (c->dead)
        return;
    set_events(srv, c);
    recharge(srv, c);
}

/* ------------------------------------------------------------------ */
/* Accepting, limits, the loop                                          */
/* ------------------------------------------------------------------ */

static int ep_add(int ep, int fd, uint64_t tag)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = tag };
    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static void pause_accepting(srv_server *srv)
{
    if (srv->accept_paused)
        return;
    for (size_t i = 0; i < srv->nlis; i++)
        epoll_ctl(srv->ep, EPOLL_CTL_DEL, srv->lis[i].fd, NULL);
    srv->accept_paused = 1;
    srv->accept_resume = now_sec() + 1;
}

static void resume_accepting(srv_server *srv)
{
    if (!srv->accept_paused || now_sec() < srv->accept_resume)
        return;
    for (size_t i = 0; i < srv->nlis; i++)
        ep_add(srv->ep, srv->lis[i].fd, TAG_LIS + 4 * (uint64_t)i);
    srv->accept_paused = 0;
}

static void accept_some(srv_server *srv, int lfd)
{
    for (int i = 0; i < SRV_ACCEPT_BURST; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            /* Out of descriptors or memory: the listener stays readable,
             * so stop watching it for a moment instead of spinning. */
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                pause_accepting(srv);
            return;
        }
        if (srv->nconns >= srv->lim.maxclients) {
            static const char msg[] = "-ERR max number of clients reached\r\n";
            ssize_t n = send(fd, msg, sizeof msg - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)n;
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* fails harmlessly on AF_UNIX */
        srv_conn *c = calloc(1, sizeof *c);
        if (!c) {
            static const char msg[] = "-ERR out of memory for this client\r\n";
            ssize_t n = send(fd, msg, sizeof msg - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)n;
            close(fd);
            continue;
        }
        c->fd = fd;
        resp_parser_init(&c->parser);
        resp_buf_init(&c->out);
        /* Every connection's commands run on the batch's session. */
        cmd_conn_init(&c->cc, &srv->env, srv->batch.sess, &c->out);
        c->cc.batch = &srv->batch;
        c->cc.commit_flags = JS_COMMIT_FLAG_LAZY;
        c->last_active = now_sec();
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (epoll_ctl(srv->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            cmd_conn_free(&c->cc);
            resp_parser_free(&c->parser);
            free(c);
            close(fd);
            continue;
        }
        c->events = EPOLLIN;
        c->next = srv->conns;
        if (srv->conns)
            srv->conns->prev = c;
        srv->conns = c;
        srv->nconns++;
    }
}

/* Over client_buffer_total: close the clients holding the most, largest
 * first, until the total fits again. */
static void enforce_total(srv_server *srv)
{
    while (srv->buf_total > srv->lim.client_buffer_total) {
        srv_conn *big = NULL;
        for (srv_conn *c = srv->conns; c; c = c->next)
            if (!big || c->charged > big->charged)
                big = c;
        if (!big || big->charged == 0)
            return;
        conn_say(big, "-ERR client buffers over client_buffer_total; closing the largest\r\n");
        conn_kill(srv, big);
    }
}

static void expire_idle(srv_server *srv, time_t now)
{
    srv_conn *next;
    for (srv_conn *c = srv->conns; c; c = next) {
        next = c->next;
        if (now - c->last_active >= (time_t)srv->lim.timeout && c->held_first == c->held_n &&
            c->sent == c->out.len)
            conn_kill(srv, c);
    }
}

static void end_turn(srv_server *srv)
{
    /* Flushing may resume input held back, which touches connections
     * again: go on until none is left. */
    while (srv->touched) {
        batch_commit(srv);
        srv_conn *c = srv->touched;
        srv->touched = NULL;
        request_flush(srv);
        while (c) {
            srv_conn *next = c->tnext;
            c->in_touched = 0;
            if (c->dead) {
                c->in_touched = 1;
                c->tnext = srv->dead;
                srv->dead = c;
            } else {
                recharge(srv, c);
                conn_flush(srv, c);
            }
            c = next;
        }
        enforce_total(srv);
    }
    batch_commit(srv);
    request_flush(srv);
}

static void free_dead(srv_server *srv)
{
    while (srv->dead) {
        srv_conn *c = srv->dead;
        srv->dead = c->tnext;
        free(c);
    }
}

static void *loop_main(void *arg)
{
    srv_server *srv = arg;
    struct epoll_event evs[SRV_EVENTS];
    time_t last_sweep = now_sec();

    for (;;) {
        int n = epoll_wait(srv->ep, evs, SRV_EVENTS,
                           srv->lim.timeout || srv->accept_paused ? 1000 : -1);
        if (n < 0 && errno != EINTR)
            break;
        srv->now = now_sec();
        int stop = 0;
        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64;
            if (tag == TAG_STOP) {
                stop = 1;
            } else if (tag == TAG_WAKE) {
                committer_report(srv);
            } else if (tag >= TAG_LIS && tag < TAG_LIS + 4 * srv->nlis && (tag - TAG_LIS) % 4 == 0) {
                accept_some(srv, srv->lis[(tag - TAG_LIS) / 4].fd);
            } else {
                srv_conn *c = evs[i].data.ptr;
                if (c->dead)
                    continue;
                if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                    conn_input(srv, c);
                if (!c->dead)
                    touch(srv, c);
            }
        }
        if (stop) {
            /* Nobody will read the replies: commit what ran (as each
             * command did on its own before), then close everything. */
            batch_commit(srv);
            break;
        }
        end_turn(srv);
        srv->turn++;
        srv->turn_cmds = 0;
        enforce_total(srv);
        if (srv->lim.timeout) {
            time_t now = now_sec();
            if (now != last_sweep) {
                last_sweep = now;
                expire_idle(srv, now);
            }
        }
        free_dead(srv);
        resume_accepting(srv);
    }
    while (srv->conns)
        conn_kill(srv, srv->conns);
    free_dead(srv);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Start and stop                                                       */
/* ------------------------------------------------------------------ */

JET_ERR srv_loop_start(srv_server *srv)
{
    sigset_t all, old;
    int prc;

    pthread_mutex_init(&srv->commit_lock, NULL);
    pthread_cond_init(&srv->commit_cond, NULL);
    srv->env.server_info = server_info;
    srv->env.client_bytes = client_bytes;
    srv->env.client_ctx = srv;
    srv->env.watchers = &srv->watchers;
    srv->rbuf = malloc(SRV_READ_CHUNK);
    if (!srv->rbuf)
        return js_fail(JET_errOutOfMemory, "srv_start: out of memory");
    JET_ERR rc = js_session_open(srv->inst, &srv->batch.sess);
    if (rc != JET_errSuccess)
        return rc;
    srv->ep = epoll_create1(EPOLL_CLOEXEC);
    srv->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    srv->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (srv->ep < 0 || srv->stop_fd < 0 || srv->wake_fd < 0 ||
        ep_add(srv->ep, srv->stop_fd, TAG_STOP) || ep_add(srv->ep, srv->wake_fd, TAG_WAKE))
        return js_fail(JET_errDiskIO, "srv_start: epoll/eventfd: %s", strerror(errno));
    for (size_t i = 0; i < srv->nlis; i++)
        if (ep_add(srv->ep, srv->lis[i].fd, TAG_LIS + 4 * (uint64_t)i))
            return js_fail(JET_errDiskIO, "srv_start: epoll: %s", strerror(errno));

    /* Our threads take no signals: the daemon handles SIGTERM/SIGINT (and
     * its FUSE wake-ups) in threads of its choosing. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    prc = 0;
    if (!srv->lim.commit_lazy) {
        prc = pthread_create(&srv->committer, NULL, committer_main, srv);
        srv->committer_started = (prc == 0);
    }
    if (prc == 0) {
        prc = pthread_create(&srv->loop, NULL, loop_main, srv);
        srv->loop_started = (prc == 0);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (prc != 0)
        return js_fail(JET_errOutOfMemory, "srv_start: cannot start a server thread: %s", strerror(prc));
    return JET_errSuccess;
}

void srv_loop_stop(srv_server *srv)
{
    if (srv->loop_started) {
        uint64_t one = 1;
        ssize_t w;
        do
            w = write(srv->stop_fd, &one, sizeof one);
        while (w < 0 && errno == EINTR);
        pthread_join(srv->loop, NULL);
        srv->loop_started = 0;
    }
    if (srv->committer_started) {
        pthread_mutex_lock(&srv->commit_lock);
        srv->commit_stop = 1;
        pthread_cond_signal(&srv->commit_cond);
        pthread_mutex_unlock(&srv->commit_lock);
        pthread_join(srv->committer, NULL);
        srv->committer_started = 0;
    }
    if (srv->ep >= 0)
        close(srv->ep);
    if (srv->stop_fd >= 0)
        close(srv->stop_fd);
    if (srv->wake_fd >= 0)
        close(srv->wake_fd);
    srv->ep = srv->stop_fd = srv->wake_fd = -1;
    free(srv->rbuf);
    srv->rbuf = NULL;
    js_session_close(srv->batch.sess);   /* no transaction is open: the loop committed it */
    srv->batch.sess = NULL;
    pthread_cond_destroy(&srv->commit_cond);
    pthread_mutex_destroy(&srv->commit_lock);
}
