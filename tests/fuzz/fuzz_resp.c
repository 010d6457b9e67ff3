/*
 * fuzz_resp.c - libFuzzer harness for the RESP parser (fs/redis/resp.c).
 * The input is fed in pieces whose sizes come from its first byte, so the
 * resumable state machine is exercised at arbitrary split points.  Every
 * complete command's arguments must lie within what was fed; a protocol
 * error must end the stream.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "redis/resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t step = 1 + data[0] % 17;
    data++;
    size--;
    resp_parser p;
    resp_parser_init(&p);
    size_t off = 0;
    while (off < size) {
        size_t n = size - off < step ? size - off : step, used = 0;
        int rc = resp_parse(&p, (const char *)data + off, n, &used);
        if (used > n)
            abort();
        if (rc == RESP_PROTO)
            break;
        if (rc == RESP_CMD) {
            const resp_arg *a = resp_argv(&p);
            for (size_t i = 0; i < resp_argc(&p); i++)
                if (a[i].len > RESP_MAX_BULK)
                    abort();
        }
        off += used;
        if (rc == RESP_NEED && used == 0)
            break;
    }
    resp_parser_free(&p);
    return 0;
}
