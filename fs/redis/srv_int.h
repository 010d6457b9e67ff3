/*
 * srv_int.h - what server.c (listening sockets, start and stop) shares with
 * loop.c (the event loop, its connections and the committer thread).
 * Internal to the Redis front.
 */
#ifndef JS_SRV_INT_H
#define JS_SRV_INT_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "commands.h"
#include "server.h"

typedef struct srv_listener {
    int fd;
    char *path;       /* Unix socket path to remove at stop; NULL for TCP */
    dev_t dev;        /* identity of the socket file we bound, so stop */
    ino_t ino;        /*   never removes a socket someone else made later */
} srv_listener;

struct srv_conn;

struct srv_server {
    js_instance *inst;
    cmd_env env;
    cmd_watch_list watchers;      /* env.watchers; the loop thread's */
    srv_limits lim;               /* defaults filled in */
    srv_listener *lis;
    size_t nlis;

    /* Event loop (loop.c).  Everything below up to the committer block
     * belongs to the loop thread alone. */
    int ep;                       /* epoll descriptor */
    int stop_fd;                  /* eventfd: srv_stop asks the loop to end */
    int wake_fd;                  /* eventfd: the committer made progress */
    pthread_t loop;
    int loop_started;
    struct srv_conn *conns;       /* every open connection */
    struct srv_conn *pending;     /* connections with replies held for the log */
    struct srv_conn *touched;     /* connections to flush at the end of a turn */
    struct srv_conn *dead;        /* closed this turn, freed at its end */
    size_t nconns;
    size_t buf_total;             /* bytes charged by every connection */
    uint64_t last_pos;            /* largest log position committed */
    uint64_t durable;             /* log known durable up to here */
    uint64_t requested;           /* flush asked of the committer up to here */
    uint64_t failed_upto;         /* a flush up to here failed (its replies
                                     were the error) */
    uint64_t ncommands;           /* total_commands_processed */
    uint64_t turn;                /* turns of the loop so far */
    size_t turn_cmds;             /* commands run in the batch this turn */
    uint64_t nflushes;            /* flushes asked of the committer */
    time_t now;                   /* monotonic seconds when this turn began:
                                     a clock read per turn, not per command */
    time_t ops_sec;               /* instantaneous_ops_per_sec: this second, */
    uint64_t ops_cur, ops_last;   /*   its count so far, the previous one's */
    cmd_batch batch;              /* the turn's shared write transaction */
    size_t batch_cmds;            /* commands run in it */
    size_t batch_bytes;           /* their argument bytes */
    struct srv_conn *batch_conns; /* connections with replies tagged by it */
    char *rbuf;                   /* one read buffer for every connection */
    int accept_paused;            /* out of descriptors: listeners unwatched */
    time_t accept_resume;         /*   until this (monotonic seconds) */

    /* Committer thread: makes the log durable up to `want`.  commit_lock
     * guards the fields below; it is never held across an engine call and
     * no other lock is taken under it. */
    pthread_t committer;
    int committer_started;
    pthread_mutex_t commit_lock;
    pthread_cond_t commit_cond;   /* want raised or stopping set */
    uint64_t want;                /* guarded: flush up to here */
    uint64_t done_pos;            /* guarded: durable up to here */
    uint64_t fail_upto;           /* guarded: a flush up to here failed */
    JET_ERR fail_err;             /* guarded: ... with this error (0: none) */
    int commit_stop;              /* guarded */
    int flushing;                 /* guarded: in js_wait_durable */
};

/** Start the loop thread (and the committer unless commits are lazy).
 *  srv->lis, inst, env and lim are set.  Returns 0 or a JET_ERR. */
JET_ERR srv_loop_start(srv_server *srv);
/** Stop and join the threads, close every connection.  Safe after a
 *  failed or partial srv_loop_start. */
void srv_loop_stop(srv_server *srv);

#endif
