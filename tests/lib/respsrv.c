/*
 * respsrv.c - the RESP server fixture (see respsrv.h).
 */
#include "respsrv.h"
#include "respcl.h"
#include "testlib.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

char tl_srv_root[64], tl_srv_dbdir[128], tl_srv_sock[128];
js_instance *tl_srv_inst;
srv_server *tl_srv;

/* What INFO backup shows: a job in progress, fixed. */
static size_t backup_info(void *ctx, char *buf, size_t cap)
{
    return (size_t)snprintf(buf, cap, "state: running\njob: 7\nphase: copy-database\nprogress_percent: 42\n");
}

void tl_srv_start_instance(int commit_mode)
{
    js_params prm;
    JET_ERR rc;

    strcpy(tl_srv_root, "/tmp/jsresp.XXXXXX");
    cr_assert_not_null(mkdtemp(tl_srv_root));
    snprintf(tl_srv_dbdir, sizeof tl_srv_dbdir, "%s/db", tl_srv_root);
    snprintf(tl_srv_sock, sizeof tl_srv_sock, "%s/s.sock", tl_srv_root);
    js_params_default(&prm);
    prm.commit_mode = commit_mode;
    rc = js_create(tl_srv_dbdir, &prm);
    cr_assert_eq(rc, 0, "js_create: %d %s", rc, js_errdetail());
    rc = js_open(tl_srv_dbdir, &prm, &tl_srv_inst);
    cr_assert_eq(rc, 0, "js_open: %d %s", rc, js_errdetail());
}

void tl_srv_start_server(void)
{
    const char *eps[] = { tl_srv_sock };
    JET_ERR rc = srv_start(tl_srv_inst, eps, 1, backup_info, NULL, &tl_srv);

    cr_assert_eq(rc, 0, "srv_start: %d %s", rc, js_errdetail());
}

void tl_srv_start_limits(int commit_mode, const srv_limits *lim)
{
    const char *eps[1];
    tl_srv_start_instance(commit_mode);
    eps[0] = tl_srv_sock;
    JET_ERR rc = srv_start_limits(tl_srv_inst, eps, 1, NULL, NULL, lim, &tl_srv);
    cr_assert_eq(rc, 0, "srv_start_limits: %d %s", rc, js_errdetail());
}

void tl_srv_expect_served(void)
{
    tl_client *c = tl_cl_open(tl_srv_sock);
    tl_cl_cmd(c, "SET", "alive", "yes", NULL);
    EXPECT(c, "+OK\r\n");
    tl_cl_cmd(c, "GET", "alive", NULL);
    EXPECT(c, "$3\r\nyes\r\n");
    tl_cl_close(c);
}

char *tl_srv_get(const char *key)
{
    tl_client *c = tl_cl_open(tl_srv_sock);
    tl_cl_cmd(c, "GET", key, NULL);
    size_t len;
    char *r = tl_cl_reply(c, &len);
    tl_cl_close(c);
    cr_assert_not_null(r, "no reply to GET %s", key);
    if (strncmp(r, "$-1", 3) == 0) {
        free(r);
        return NULL;
    }
    char *nl = strstr(r, "\r\n");
    cr_assert_not_null(nl);
    char *v = strndup(nl + 2, len - (size_t)(nl + 2 - r) - 2);
    free(r);
    return v;
}

void tl_srv_setup_lazy(void)
{
    tl_srv_start_instance(JS_COMMIT_LAZY);
    tl_srv_start_server();
}

void tl_srv_setup_durable(void)
{
    tl_srv_start_instance(JS_COMMIT_DURABLE);
    tl_srv_start_server();
}

void tl_srv_teardown(void)
{
    srv_stop(tl_srv);
    tl_srv = NULL;
    if (tl_srv_inst)
        js_close(tl_srv_inst);
    tl_srv_inst = NULL;
    if (tl_srv_root[0])
        tl_rmrf(tl_srv_root);
}

static void *noise_client(void *arg)
{
    struct tl_noise_job *j = arg;
    tl_client *c = tl_cl_open(tl_srv_sock);
    for (int r = 0; !*j->stop && r < j->rounds; r++) {
        tl_dbuf b = { 0 };
        for (int i = 0; i < 16; i++) {
            char k[64];
            snprintf(k, sizeof k, "n:%d:%d", j->id, (r * 16 + i) % j->spread);
            tl_dbuf_set(&b, k, "v");
        }
        tl_cl_send(c, b.p, b.len);
        free(b.p);
        for (int i = 0; i < 16; i++) {
            size_t len;
            char *rep = tl_cl_reply(c, &len);
            if (!rep || strcmp(rep, "+OK\r\n") != 0)
                j->bad++;
            free(rep);
        }
    }
    tl_cl_close(c);
    return NULL;
}

void tl_noise_start(tl_noise *n, int rounds, int spread)
{
    n->stop = 0;
    for (int i = 0; i < TL_NOISE_CLIENTS; i++) {
        n->jobs[i] = (struct tl_noise_job){ .id = i, .rounds = rounds, .spread = spread, .stop = &n->stop };
        cr_assert_eq(pthread_create(&n->th[i], NULL, noise_client, &n->jobs[i]), 0);
    }
}

void tl_noise_stop(tl_noise *n)
{
    n->stop = 1;
    for (int i = 0; i < TL_NOISE_CLIENTS; i++) {
        pthread_join(n->th[i], NULL);
        cr_assert_eq(n->jobs[i].bad, 0, "noise client %d: %d replies not +OK", i, n->jobs[i].bad);
    }
}

js_instance *tl_srv_kill_run(const char *tag, void *(*client)(void *), tl_kill_job *jobs, int nclients, int target,
                             char root[64])
{
    char dir[128], sock[128];
    snprintf(root, 64, "/tmp/%s.XXXXXX", tag);
    cr_assert_not_null(mkdtemp(root));
    snprintf(dir, sizeof dir, "%s/db", root);
    snprintf(sock, sizeof sock, "%s/s.sock", root);
    js_params prm;
    js_params_default(&prm);
    prm.commit_mode = JS_COMMIT_DURABLE;
    prm.log_file_size = 1 << 20;
    cr_assert_eq(js_create(dir, &prm), 0);
    pid_t pid = tl_srv_fork(dir, &prm, sock);
    pthread_t *th = calloc((size_t)nclients, sizeof *th);
    cr_assert_not_null(th);
    for (int i = 0; i < nclients; i++) {
        jobs[i] = (tl_kill_job){ .id = i };
        snprintf(jobs[i].sock, sizeof jobs[i].sock, "%s", sock);
        cr_assert_eq(pthread_create(&th[i], NULL, client, &jobs[i]), 0);
    }
    for (int waited = 0; waited < 600; waited++) {
        int total = 0;
        for (int i = 0; i < nclients; i++)
            total += jobs[i].acked;
        if (total >= target)
            break;
        tl_sleep_ms(50);
    }
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    for (int i = 0; i < nclients; i++)
        pthread_join(th[i], NULL);
    free(th);
    js_instance *inst;
    cr_assert_eq(js_open(dir, &prm, &inst), 0, "reopen after SIGKILL: %s", js_errdetail());
    return inst;
}

/* Descriptors the process has open. */
static int open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n - 3;   /* ".", ".." and the directory's own descriptor */
}

pid_t tl_srv_fork(const char *dir, const js_params *prm, const char *sock)
{
    return tl_srv_fork_fds(dir, prm, sock, -1);
}

pid_t tl_srv_fork_fds(const char *dir, const js_params *prm, const char *sock, int spare_fds)
{
    int ready[2];
    cr_assert_eq(pipe(ready), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);   /* a failed test leaves no server */
        js_instance *inst;
        srv_server *srv;
        const char *eps[] = { sock };
        close(ready[0]);
        if (js_open(dir, prm, &inst) != 0 || srv_start_limits(inst, eps, 1, NULL, NULL, NULL, &srv) != 0)
            _exit(3);
        if (spare_fds >= 0) {
            /* Room for spare_fds more (after closing the pipe, which takes one). */
            int n = open_fds() - 1;
            struct rlimit rl;
            getrlimit(RLIMIT_NOFILE, &rl);
            rl.rlim_cur = (rlim_t)(n + spare_fds);
            if (n < 0 || setrlimit(RLIMIT_NOFILE, &rl) != 0)
                _exit(4);
        }
        ssize_t w = write(ready[1], "r", 1);
        (void)w;
        close(ready[1]);
        for (;;)
            pause();
    }
    close(ready[1]);
    char ch;
    cr_assert_eq(read(ready[0], &ch, 1), 1, "the server child did not start");
    close(ready[0]);
    return pid;
}
