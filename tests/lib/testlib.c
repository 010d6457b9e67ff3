/*
 * testlib.c - the shared helpers of every test suite (see testlib.h).
 */
#include "testlib.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
/* Under ASan freed memory stays resident in its quarantine (256 MiB by
 * default), which tests that bound the resident size of an in-process
 * server (test_redis_limits: half-sent requests against
 * client_buffer_total) would count as the server's.  A smaller quarantine
 * still catches a use soon after a free. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "quarantine_size_mb=32";
}
#endif

char tl_tmp[PATH_MAX];

void tl_tmp_setup(const char *name)
{
    char t[PATH_MAX];

    cr_assert_lt(snprintf(t, sizeof t, "/tmp/%s.XXXXXX", name), (int)sizeof t);
    cr_assert_not_null(mkdtemp(t), "mkdtemp %s: %s", t, strerror(errno));
    cr_assert_not_null(realpath(t, tl_tmp));
}

void tl_tmp_teardown(void)
{
    if (tl_tmp[0])
        tl_rmrf(tl_tmp);
}

char *tl_tmpdir(const char *name)
{
    char *t = malloc(strlen(name) + 16);

    cr_assert_not_null(t);
    sprintf(t, "/tmp/%s-XXXXXX", name);
    cr_assert_not_null(mkdtemp(t), "mkdtemp %s: %s", t, strerror(errno));
    return t;
}

/* nftw has no context argument: the failures of one walk are counted here
 * (tests are one process each, one walk at a time). */
static int rm_failed;

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb;
    (void)flag;
    (void)f;
    if (remove(p) != 0)
        rm_failed = 1;
    return 0;
}

int tl_rmrf(const char *dir)
{
    rm_failed = 0;
    if (nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return -1;
    return rm_failed ? -1 : 0;
}

char *tl_tp(const char *fmt, ...)
{
    static char bufs[32][PATH_MAX];
    static int next;
    char *p = bufs[next++ % 32];
    char rel[PATH_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    /* Checking the length also tells the compiler truncation is handled. */
    cr_assert_lt(snprintf(p, PATH_MAX, "%s/%s", tl_tmp, rel), PATH_MAX);
    return p;
}

void tl_pathf(char *out, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(out, PATH_MAX, fmt, ap);
    va_end(ap);
}

void tl_build_bin(char *out, const char *name)
{
    const char *b = getenv("BUILD");
    char p[PATH_MAX];

    snprintf(p, sizeof p, "%s/%s", b != NULL && *b != '\0' ? b : "build", name);
    cr_assert_not_null(realpath(p, out), "no %s binary at %s (build it first)", name, p);
}

long tl_vm_rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot read %s", path);
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

size_t tl_pages_resident(const void *addr, size_t len)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), n = (len + pg - 1) / pg, in = 0;
    unsigned char *vec = malloc(n ? n : 1);
    cr_assert_not_null(vec);
    cr_assert_eq(mincore((void *)addr, len, vec), 0, "mincore: %s", strerror(errno));
    for (size_t i = 0; i < n; i++)
        in += vec[i] & 1;
    free(vec);
    return in;
}

size_t tl_file_pages_cached(const char *path, uint64_t off, uint64_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
    void *m = mmap(NULL, (size_t)len, PROT_READ, MAP_SHARED, fd, (off_t)off);
    cr_assert_neq(m, MAP_FAILED, "mmap %s: %s", path, strerror(errno));
    size_t in = tl_pages_resident(m, (size_t)len);
    munmap(m, (size_t)len);
    close(fd);
    return in;
}

double tl_cached_share(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "stat %s: %s", path, strerror(errno));
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), npg = ((size_t)st.st_size + pg - 1) / pg;
    return npg ? (double)tl_file_pages_cached(path, 0, (uint64_t)st.st_size) / (double)npg : 0.0;
}

void tl_set_cached(const char *path, int warm)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
    if (warm) {
        static char buf[1 << 16];
        ssize_t got;
        while ((got = read(fd, buf, sizeof buf)) > 0) {
        }
        cr_assert_eq(got, 0, "read %s: %s", path, strerror(errno));
    } else {
        cr_assert_eq(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    }
    close(fd);
}

int64_t tl_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tl_sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

int tl_exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0;
}

int tl_dir_entries(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;
    int n = 0;

    if (!d)
        return -1;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

/* Read fd to its end: with pread from offset 0 (a descriptor shared with a
 * running child keeps its offset) or with read (our own descriptor, which
 * may be a FUSE file that cannot seek). */
static char *slurp_all(int fd, size_t *len, int positional)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    ssize_t r;

    cr_assert_not_null(buf);
    for (;;) {
        r = positional ? pread(fd, buf + n, cap - n, (off_t)n) : read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
            cr_assert_not_null(buf);
        }
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

char *tl_slurp_fd(int fd, size_t *len)
{
    return slurp_all(fd, len, 1);
}

char *tl_slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *s;

    if (fd < 0)
        return NULL;
    s = slurp_all(fd, len, 0);
    close(fd);
    return s;
}

void tl_spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

void tl_flip_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    unsigned char b;

    cr_assert(fd >= 0, "open %s: %s", path, strerror(errno));
    cr_assert_eq(pread(fd, &b, 1, off), 1);
    b ^= 0x5a;
    cr_assert_eq(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

js_params tl_test_params(void)
{
    js_params p;

    js_params_default(&p);
    p.page_size = 4096;
    p.log_file_size = 64 << 10;
    p.commit_mode = JS_COMMIT_LAZY;
    p.cache_size = 32 << 20;
    p.checkpoint_ms = 3600 * 1000;
    return p;
}

js_params tl_lazy_params(void)
{
    js_params p;
    js_params_default(&p);
    p.commit_mode = JS_COMMIT_LAZY;
    p.log_file_size = 256 << 10;
    p.cache_size = 8 << 20;
    return p;
}

js_params tl_rolling_params(void)
{
    js_params p = tl_lazy_params();
    p.log_file_size = 64 << 10;
    p.checkpoint_ms = 3600 * 1000;   /* keep the checkpoint at the start */
    return p;
}

void tl_in_crashing_child(const char *dir, const js_params *p, void (*fn)(js_instance *, js_session *))
{
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        js_instance *inst;
        js_session *s;
        if (js_open(dir, p, &inst) || js_session_open(inst, &s))
            _exit(3);
        fn(inst, s);
        _exit(0);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed: status %d", st);
}

int tl_count_lines(const char *s)
{
    int n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}
