/*
 * fuzz_readers.c - libFuzzer harness for the on-disk readers: the input is
 * written as a log generation, a database file and a checkpoint file, then
 * read with loggen_scan, dbh_read, js_check and chk_read.  Garbage must be
 * refused with an error, never crash or read out of bounds.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "instance/instance.h"

static char dir[64];

static void put_file(const char *name, const uint8_t *data, size_t size)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        abort();
    if (size && write(fd, data, size) != (ssize_t)size)
        abort();
    close(fd);
}

static JET_ERR count_rec(void *ctx, uint64_t lsn, int type, const uint8_t *p, uint32_t len)
{
    (void)lsn;
    (void)p;
    if (type < REC_IMAGE || type > REC_COMMIT || len > (1u << 20))
        abort();
    ++*(uint64_t *)ctx;
    return JET_errSuccess;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/jsfuzz-XXXXXX");
        if (!mkdtemp(dir))
            abort();
    }
    char path[128];
    loggen_hdr h;
    loggen_scan_result r;
    uint64_t n = 0;

    put_file("edb00000001.log", data, size);
    snprintf(path, sizeof path, "%s/edb00000001.log", dir);
    (void)loggen_scan(path, 0, 0, count_rec, &n, &h, &r);
    (void)loggen_scan(path, 1, 0, count_rec, &n, &h, &r);

    put_file("jetsnap.edb", data, size);
    snprintf(path, sizeof path, "%s/jetsnap.edb", dir);
    int fd = open(path, O_RDONLY);
    db_header dh;
    (void)dbh_read(fd, path, &dh);
    close(fd);
    js_check_report rep;
    (void)js_check(dir, &rep);

    put_file("edb.chk", data, size);
    chk_file chk;
    (void)chk_read(dir, &chk);
    return 0;
}
