/*
 * respcl.h - a raw RESP2 client for tests: commands sent as arrays of bulk
 * strings, replies read back whole and byte for byte, so a test compares
 * exactly what the server wrote.  Plus the one-shot probes the mount tests
 * use on the daemon's socket (PING, INFO backup).
 */
#ifndef TL_RESPCL_H
#define TL_RESPCL_H

#include <stddef.h>

typedef struct tl_client {
    int fd;
    char buf[65536];
    size_t len, off;            /* buffered bytes not yet consumed: [off, len) */
} tl_client;

/* A growing byte buffer (p NUL-terminated, len bytes; start it zeroed). */
typedef struct tl_dbuf {
    char *p;
    size_t len, cap;
} tl_dbuf;

/* Append the byte ch to d. */
void tl_dbuf_put(tl_dbuf *d, int ch);
/* Append the C string s to d. */
void tl_dbuf_puts(tl_dbuf *d, const char *s);
/* Append the RESP command SET key val (C strings) to d, for pipelines. */
void tl_dbuf_set(tl_dbuf *d, const char *key, const char *val);

/* Connect to the Unix socket at path (asserts it works); a reply that
 * does not come within 20 s then reads as end of file. */
tl_client *tl_cl_open(const char *path);

/* Close the connection and free c. */
void tl_cl_close(tl_client *c);

/* Send len raw bytes (asserts they all went). */
void tl_cl_send(tl_client *c, const void *data, size_t len);

/* The next complete reply, raw (nested arrays included), as a malloc'd
 * NUL-terminated buffer of *len bytes; NULL on end of file or timeout. */
char *tl_cl_reply(tl_client *c, size_t *len);

/* Send a command of n binary-safe arguments av[i] of al[i] bytes. */
void tl_cl_cmdv(tl_client *c, size_t n, const char *const *av, const size_t *al);

/* Send a command of C-string arguments (the list ends with NULL). */
void tl_cl_cmd(tl_client *c, ...);

/* Assert the next reply is exactly want[0..wlen); what names it. */
void tl_cl_expect_raw(tl_client *c, const char *want, size_t wlen, const char *what);

/* Assert the next reply is the string literal lit of raw RESP. */
#define EXPECT(c, lit) tl_cl_expect_raw((c), (lit), sizeof(lit) - 1, #lit)

/* Assert the next reply is an error whose text starts with prefix. */
void tl_cl_expect_err(tl_client *c, const char *prefix);

/* Assert the server closed the connection (after any pending replies). */
void tl_cl_expect_eof(tl_client *c);

/* A descriptor connected to the Unix socket at path, or -1. */
int tl_resp_connect(const char *path);

/* The next CRLF-terminated line read from fd, without its CRLF, into line
 * (cap bytes, NUL-terminated, cut to fit); buf (4096 bytes) with *blen
 * bytes in it keeps what was read past the line for the next call.  No
 * assertion, so client threads may use it.  -1 at end of file, on an error,
 * or for a line longer than buf. */
int tl_resp_read_line(int fd, char *buf, size_t *blen, char *line, size_t cap);

/* One PING on a new connection to path: 1 when "+PONG" came back. */
int tl_resp_ping(const char *path);

/* INFO backup on a new connection to sock, the reply's text into out (cap
 * bytes, NUL-terminated); -1 when the socket cannot be reached. */
int tl_resp_info_backup(const char *sock, char *out, size_t cap);

#endif
