/*
 * fuzz_control.c - libFuzzer harness for the control-file grammar
 * (ctl_parse in fs/daemon/control.c): any write is either refused with one of the
 * documented errors or yields a command whose path is absolute.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "daemon/control.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ctl_cmd cmd;
    JET_ERR err = ctl_parse((const char *)data, size, &cmd);
    if (err == JET_errSuccess) {
        if (cmd.kind == CTL_BACKUP && cmd.path[0] != '/')
            abort();
    } else if (err != JET_errInvalidParameter && err != JET_errInvalidGrbit) {
        abort();
    }
    return 0;
}
