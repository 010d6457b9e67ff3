/*
 * respsrv.h - the RESP server fixture: a real instance in a scratch
 * directory and srv_start listening on a Unix socket beside it, in-process
 * (the fs/ objects are linked into every test binary).
 */
#ifndef TL_RESPSRV_H
#define TL_RESPSRV_H

#include <pthread.h>
#include <sys/types.h>

#include "jetsnap.h"
#include "../../fs/redis/server.h"

extern char tl_srv_root[64];    /* the scratch directory */
extern char tl_srv_dbdir[128];  /* the instance: ROOT/db */
extern char tl_srv_sock[128];   /* the socket: ROOT/s.sock */
extern js_instance *tl_srv_inst;
extern srv_server *tl_srv;

/* Make the scratch directory and create and open an instance there with
 * the given commit mode. */
void tl_srv_start_instance(int commit_mode);

/* srv_start on tl_srv_sock with a fixed INFO backup section. */
void tl_srv_start_server(void);

/* The instance with commit_mode, then srv_start_limits with lim (NULL:
 * the defaults) on tl_srv_sock, no INFO backup section. */
void tl_srv_start_limits(int commit_mode, const srv_limits *lim);
/* Assert a new client can SET and GET (the server is not stalled). */
void tl_srv_expect_served(void);
/* The value of key (a C string) through a new connection, malloc'd; NULL
 * when absent. */
char *tl_srv_get(const char *key);
/* A suite's .init: the instance with lazy commits, then the server. */
void tl_srv_setup_lazy(void);

/* A suite's .init: the instance with durable commits, then the server. */
void tl_srv_setup_durable(void);

/* A suite's .fini: stop the server, close the instance, remove the
 * scratch directory (each only if it is there). */
void tl_srv_teardown(void);

/* Fork a child that opens the instance in dir with prm and serves it on
 * sock until it is killed (and dies with the test process); returns its
 * pid once it listens. */
pid_t tl_srv_fork(const char *dir, const js_params *prm, const char *sock);
/* The same, and the child may then open spare_fds more descriptors, no
 * more (RLIMIT_NOFILE), to run out of them on purpose. */
pid_t tl_srv_fork_fds(const char *dir, const js_params *prm, const char *sock, int spare_fds);

/* Background writers for tl_srv's socket: TL_NOISE_CLIENTS clients, each
 * sending pipelines of 16 SETs (keys n:ID:K, K below spread) for at most
 * rounds rounds, until tl_noise_stop; that joins them and asserts every
 * reply was +OK. */
#define TL_NOISE_CLIENTS 8
typedef struct tl_noise {
    pthread_t th[TL_NOISE_CLIENTS];
    struct tl_noise_job {
        int id, rounds, spread;
        volatile int *stop;
        int bad;                /* replies other than +OK */
    } jobs[TL_NOISE_CLIENTS];
    volatile int stop;
} tl_noise;
void tl_noise_start(tl_noise *n, int rounds, int spread);
void tl_noise_stop(tl_noise *n);

/* One client of tl_srv_kill_run: its client function sends rounds on sock
 * and counts them (rounds_sent once sent, acked once every reply of rounds
 * 0..acked-1 was as expected) until the server dies.  Plain sockets: no
 * assertion may fire in a client thread. */
typedef struct tl_kill_job {
    int id;
    char sock[128];
    volatile int rounds_sent, acked;
} tl_kill_job;

/* A new durable instance (1 MiB generations) in a mkdtemp directory named
 * after tag, served by tl_srv_fork; nclients threads run client(&jobs[i])
 * until their acknowledged rounds reach target in all (or 30 s pass); then
 * the server is SIGKILLed, the threads joined, and the instance reopened
 * with the same parameters for the caller's checks (it closes it, and
 * removes root, the scratch directory). */
js_instance *tl_srv_kill_run(const char *tag, void *(*client)(void *), tl_kill_job *jobs, int nclients, int target,
                             char root[64]);

#endif
