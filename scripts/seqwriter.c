/*
 * seqwriter.c - the monotonic writer of DESIGN section 6, for the demo:
 * connects to a jetsnapfs Redis socket and, for N = start, start+1, ...,
 * sets seq:N and counter=N in one MULTI/EXEC, waiting for each reply.  Any
 * consistent copy of the data then holds seq:1..counter with no gap.  The
 * last acknowledged N is written to ACKFILE on SIGTERM/SIGINT.
 *   usage: seqwriter SOCKET ACKFILE
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* Read one reply line (through "\r\n"); 0 on success. */
static int read_line(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t r = read(fd, buf + n, 1);
        if (r <= 0)
            return -1;
        if (buf[n++] == '\n')
            break;
    }
    buf[n] = '\0';
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: seqwriter SOCKET ACKFILE\n");
        return 2;
    }
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", argv[1]);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        perror("seqwriter: connect");
        return 1;
    }
    struct sigaction act = { .sa_handler = on_signal };
    sigaction(SIGTERM, &act, NULL);
    sigaction(SIGINT, &act, NULL);
    long acked = 0;
    for (long n = 1; !stop; n++) {
        char req[256], num[32], line[128];
        int nl = snprintf(num, sizeof num, "%ld", n);
        int len = snprintf(req, sizeof req,
                           "*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$%d\r\nseq:%s\r\n$%d\r\n%s\r\n"
                           "*3\r\n$3\r\nSET\r\n$7\r\ncounter\r\n$%d\r\n%s\r\n*1\r\n$4\r\nEXEC\r\n",
                           nl + 4, num, nl, num, nl, num);
        if (write(fd, req, (size_t)len) != len)
            break;
        /* +OK, +QUEUED, +QUEUED, *2, +OK, +OK */
        int ok = 1;
        for (int i = 0; i < 6 && ok; i++)
            ok = read_line(fd, line, sizeof line) == 0 && line[0] != '-';
        if (!ok)
            break;
        acked = n;
    }
    FILE *f = fopen(argv[2], "w");
    if (f) {
        fprintf(f, "%ld\n", acked);
        fclose(f);
    }
    return 0;
}
