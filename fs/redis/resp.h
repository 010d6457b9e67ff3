/*
 * resp.h - RESP2 request parser and reply builder for the Redis front.
 *
 * The parser keeps all of its state in a resp_parser owned by the connection
 * (Redis's habit): bytes are fed as they arrive, in pieces of any size, and a
 * command is returned once its last byte is in.  Splitting a request at any
 * byte boundary gives the same result as feeding it whole.
 *
 * Two request forms are accepted, as by Redis:
 *   multibulk   "*<argc>\r\n" then argc times "$<len>\r\n<len bytes>\r\n"
 *               (binary safe; a bare "\n" also ends a header line)
 *   inline      one line of words separated by blanks, ended by "\n" (an
 *               optional "\r" before it is dropped); words may be quoted with
 *               "..." (escapes \n \r \t \b \a \\ \" \xHH) or '...' (\' only)
 * A multibulk count <= 0 and an empty inline line are no command (skipped).
 *
 * Every length is capped so one connection cannot make the server allocate
 * without bound: RESP_MAX_ARGS arguments, RESP_MAX_BULK bytes per argument,
 * RESP_MAX_INLINE bytes per inline line, RESP_MAX_REQUEST bytes per command
 * (arguments plus their bookkeeping).  Breaking a cap, or malformed framing,
 * is a protocol error: the parser stops, and the caller sends
 * "-ERR Protocol error: ..." and closes that connection only.
 *
 * Thread rules: a parser or a reply buffer is used by one thread at a time.
 */
#ifndef JS_RESP_H
#define JS_RESP_H

#include <stddef.h>
#include <stdarg.h>

#define RESP_MAX_ARGS    (1024u * 1024u)
/* Above the engine's 1 MiB value limit on purpose: a value a little too big
 * is read whole and refused by the engine with an ordinary -ERR, so the
 * connection survives; only absurd lengths are protocol errors. */
#define RESP_MAX_BULK    (4u * 1024u * 1024u)
#define RESP_MAX_INLINE  (64u * 1024u)
#define RESP_MAX_REQUEST (64u * 1024u * 1024u)

/* One argument of a parsed command.  p points at len bytes followed by a NUL
 * (not counted), so numeric arguments can be parsed in place. */
typedef struct resp_arg {
    const char *p;
    size_t len;
} resp_arg;

enum resp_rc {
    RESP_NEED = 0,   /* every byte given was consumed; no command yet */
    RESP_CMD = 1,    /* a command is complete (resp_argc/resp_argv) */
    RESP_PROTO = -1  /* protocol error (resp_errmsg); the parser is dead */
};

typedef struct resp_parser {
    int state;            /* enum in resp.c: where in a request we are */
    char line[64];        /* header line being collected ("*12", "$5") */
    size_t line_len;
    char *inl;            /* inline line being collected (malloc'd) */
    size_t inl_len, inl_cap;
    long long multi_left; /* bulk arguments still expected */
    long long bulk_left;  /* bytes of the current bulk still expected */
    int crlf_left;        /* bytes of the CRLF after a bulk still expected */
    /* Arguments of the command being built: bytes in data, boundaries in
     * off/len (offsets, because data may move when it grows). */
    char *data;
    size_t data_len, data_cap;
    size_t *off, *alen;
    size_t argc, arg_cap;
    size_t request_bytes; /* charged against RESP_MAX_REQUEST */
    resp_arg *argv;       /* built by resp_parse when it returns RESP_CMD */
    size_t argv_cap;
    int complete;         /* the last call returned RESP_CMD */
    const char *err;      /* protocol error message */
    char errbuf[64];      /* room for a message naming a byte */
} resp_parser;

void resp_parser_init(resp_parser *p);
void resp_parser_free(resp_parser *p);

/** Feed len bytes.  *used receives how many were consumed: all of them with
 *  RESP_NEED; up to the end of the command with RESP_CMD (feed the rest
 *  afterwards); unspecified with RESP_PROTO.  After RESP_CMD the arguments
 *  stay valid until the next resp_parse call on this parser.  Allocation
 *  failure is reported as RESP_PROTO with an "out of memory" message. */
int resp_parse(resp_parser *p, const char *buf, size_t len, size_t *used);

size_t resp_argc(const resp_parser *p);
const resp_arg *resp_argv(const resp_parser *p);
/** Heap bytes the parser holds now (what a half-sent request costs; the
 *  server charges it against its buffer limits). */
size_t resp_parser_bytes(const resp_parser *p);
/** The protocol error message ("Protocol error: invalid bulk length"). */
const char *resp_errmsg(const resp_parser *p);
/** The second argument (the key, for most commands) of each whole RESP
 *  command at the start of buf, up to max of them, into keys (pointing into
 *  buf): for a server that wants to look ahead of a pipeline.  Only while
 *  the parser p is between commands (else 0), since buf then starts one.
 *  Stops at the first command that is not whole, not multibulk, or has
 *  fewer than two arguments.  Returns how many keys it found. */
size_t resp_peek_keys(const resp_parser *p, const char *buf, size_t len, resp_arg *keys, size_t max);

/* ------------------------------------------------------------------ */
/* Replies                                                              */
/* ------------------------------------------------------------------ */

/* A growable reply buffer.  Builders never fail: an allocation failure sets
 * oom and later builders do nothing; the caller closes the connection. */
typedef struct resp_buf {
    char *p;
    size_t len, cap;
    int oom;
} resp_buf;

void resp_buf_init(resp_buf *b);
void resp_buf_free(resp_buf *b);
void resp_buf_reset(resp_buf *b);
void resp_add_raw(resp_buf *b, const void *data, size_t len);
/** "+s\r\n"; s must not hold CR or LF. */
void resp_add_status(resp_buf *b, const char *s);
/** "-<formatted>\r\n"; CR and LF in the message become spaces, as in Redis.
 *  The caller writes the code ("ERR ...", "EXECABORT ..."). */
void resp_add_error(resp_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void resp_add_int(resp_buf *b, long long v);
void resp_add_bulk(resp_buf *b, const void *data, size_t len);
void resp_add_cbulk(resp_buf *b, const char *s);
/** "$-1\r\n", the RESP2 null. */
void resp_add_null(resp_buf *b);
void resp_add_array(resp_buf *b, long long n);

/** Strict decimal like Redis's string2ll: optional '-', no blanks, no '+',
 *  no leading zeros, no "-0", fits in a long long.  0 on success, -1 if s
 *  (n bytes, not NUL-terminated) is not such a number. */
int resp_parse_ll(const char *s, size_t n, long long *out);

#endif
