# jetsnap - plain make: `make`, `make check`, `make check SANITIZE=1`,
# `make bench`, `make demo`, `make install PREFIX=...`.
PREFIX   ?= /usr/local
SANITIZE ?= 0
ifeq ($(SANITIZE),1)
BUILD    ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT      := -O1 -g
else
BUILD    ?= build
SANFLAGS :=
OPT      ?= -O2 -g
endif

CC       ?= cc
WARN     := -Wall -Wextra -Werror -Wstrict-prototypes -Wshadow -Wno-unused-parameter -Wno-format-truncation
CFLAGS   += -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(SANFLAGS) -pthread -Icore -MMD -MP
LDFLAGS  += $(SANFLAGS) -pthread

PKGS_OK  := $(shell pkg-config --exists fuse3 openssl 2>/dev/null && test -f /usr/include/criterion/criterion.h && echo yes)
ifneq ($(PKGS_OK),yes)
ifeq ($(filter deps demo clean help,$(MAKECMDGOALS)),)
$(error missing build dependencies (libfuse3-dev, libssl-dev, libcriterion-dev, pkg-config): run `sudo scripts/deps.sh` (or `make deps`) first)
endif
endif

FUSE_CFLAGS := $(shell pkg-config --cflags fuse3 2>/dev/null)
FUSE_LIBS   := $(shell pkg-config --libs fuse3 2>/dev/null)
SSL_LIBS    := $(shell pkg-config --libs libcrypto 2>/dev/null)

CORE_SRC := $(filter-out core/cli%.c,$(wildcard core/*.c))
CLI_SRC  := $(wildcard core/cli*.c)
FS_SRC   := $(wildcard fs/*.c)
TEST_SRC := $(wildcard tests/test_*.c)
TESTLIB_SRC := $(filter-out tests/test_%.c,$(wildcard tests/*.c))

CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
FS_OBJ   := $(FS_SRC:%.c=$(BUILD)/%.o)
TESTLIB_OBJ := $(TESTLIB_SRC:%.c=$(BUILD)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
FS_LIBOBJ := $(filter-out $(BUILD)/fs/main.o,$(FS_OBJ))

LIB      := $(BUILD)/libjetsnap.a
BINS     := $(BUILD)/jetsnap $(if $(FS_SRC),$(BUILD)/jetsnapfs)

.PHONY: all check bench demo install deps clean help
all: $(LIB) $(BINS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(if $(filter fs/% tests/%,$<),$(FUSE_CFLAGS)) -c $< -o $@

$(LIB): $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/jetsnap: $(CLI_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(SSL_LIBS)

$(BUILD)/jetsnapfs: $(FS_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(FUSE_LIBS) $(SSL_LIBS)

# Each tests/test_*.c is one Criterion binary; tests/*.c without the prefix
# are helpers linked into every test; fs/ objects (minus main) are linked so
# the daemon's modules can be tested in-process.
$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TESTLIB_OBJ) $(FS_LIBOBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ -lcriterion $(FUSE_LIBS) $(SSL_LIBS) -lsqlite3

check: all $(TEST_BIN)
	BUILD=$(BUILD) scripts/run-tests.sh $(TEST_BIN)

bench: all
	BUILD=$(BUILD) scripts/bench.sh

demo:
	scripts/demo.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include
	install -m 0755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 $(LIB) $(DESTDIR)$(PREFIX)/lib/
	install -m 0644 core/jetsnap.h $(DESTDIR)$(PREFIX)/include/

deps:
	scripts/deps.sh

clean:
	rm -rf build build-san build-*

help:
	@echo "targets: all check bench demo install deps clean (SANITIZE=1, BUILD=dir, PREFIX=dir)"

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
