# jetsnap - plain make: `make`, `make check`, `make check SANITIZE=1`,
# `make bench`, `make demo`, `make install PREFIX=...`.
PREFIX   ?= /usr/local
SANITIZE ?= 0
ifeq ($(SANITIZE),1)
BUILD    ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
# JS_VERIFY_RANGES: every commit checks that the byte ranges a page's
# changes were reported in (tree/tview.h) cover every changed byte.
# JS_ARENA_MALLOC: the buffer pool's memory from malloc, one block per
# buffer, so AddressSanitizer checks their bounds (store/arena.c).
OPT      := -O1 -g -DJS_VERIFY_RANGES -DJS_ARENA_MALLOC
else
BUILD    ?= build
SANFLAGS :=
OPT      ?= -O2 -g
endif

CC       ?= cc
WARN     := -Wall -Wextra -Werror -Wstrict-prototypes -Wshadow -Wno-unused-parameter -Wno-format-truncation
CFLAGS   += -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(SANFLAGS) -pthread -Icore -MMD -MP
LDFLAGS  += $(SANFLAGS) -pthread

PKGS_OK  := $(shell pkg-config --exists fuse3 openssl libsystemd 2>/dev/null && test -f /usr/include/criterion/criterion.h && echo yes)
ifneq ($(PKGS_OK),yes)
ifeq ($(filter deps demo clean help,$(MAKECMDGOALS)),)
$(error missing build dependencies (libfuse3-dev, libssl-dev, libsystemd-dev, libcriterion-dev, pkg-config): run `sudo scripts/deps.sh` (or `make deps`) first)
endif
endif

FUSE_CFLAGS := $(shell pkg-config --cflags fuse3 2>/dev/null)
FUZZ_CFLAGS  = $(FUSE_CFLAGS)
FUSE_LIBS   := $(shell pkg-config --libs fuse3 2>/dev/null)
SSL_LIBS    := $(shell pkg-config --libs libcrypto 2>/dev/null)
# sd_notify() for Type=notify units: only fs/daemon/main.c calls it.
SYSTEMD_CFLAGS := $(shell pkg-config --cflags libsystemd 2>/dev/null)
SYSTEMD_LIBS   := $(shell pkg-config --libs libsystemd 2>/dev/null)

# core/ is the library; fs/ holds the programs: the daemon's FUSE side
# (fs/daemon), its Redis side (fs/redis), the jetsnap tool (fs/tool) and the
# protocol both programs speak (fs/proto).
CORE_SRC   := $(shell find core -name '*.c' | sort)
PROTO_SRC  := $(wildcard fs/proto/*.c)
DAEMON_SRC := $(wildcard fs/daemon/*.c)
REDIS_SRC  := $(wildcard fs/redis/*.c)
TOOL_SRC   := $(wildcard fs/tool/*.c)
FS_SRC     := $(DAEMON_SRC) $(REDIS_SRC) $(PROTO_SRC)
TEST_SRC := $(wildcard tests/test_*.c)
TESTLIB_SRC := $(wildcard tests/lib/*.c)

CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/%.o)
PROTO_OBJ := $(PROTO_SRC:%.c=$(BUILD)/%.o)
TOOL_OBJ := $(TOOL_SRC:%.c=$(BUILD)/%.o)
FS_OBJ   := $(FS_SRC:%.c=$(BUILD)/%.o)
TESTLIB_OBJ := $(TESTLIB_SRC:%.c=$(BUILD)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
FS_LIBOBJ := $(filter-out $(BUILD)/fs/daemon/main.o,$(FS_OBJ))

LIB      := $(BUILD)/libjetsnap.a
BINS     := $(BUILD)/jetsnap $(if $(FS_SRC),$(BUILD)/jetsnapfs)

.PHONY: all check bench demo install deps clean help fuzz lint
all: $(LIB) $(BINS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(if $(filter fs/% tests/%,$<),-Ifs $(FUSE_CFLAGS)) $(if $(filter tests/%,$<),-Itests/lib) $(if $(filter fs/daemon/main.c,$<),$(SYSTEMD_CFLAGS)) -c $< -o $@

$(LIB): $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/jetsnap: $(TOOL_OBJ) $(PROTO_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(SSL_LIBS)

$(BUILD)/jetsnapfs: $(FS_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(FUSE_LIBS) $(SSL_LIBS) $(SYSTEMD_LIBS)

# Each tests/test_*.c is one Criterion binary; tests/lib/*.c are the helpers
# every suite shares (seen as -Itests/lib), linked into every test; the
# daemon's objects (minus its main) and fs/proto are linked so they can be
# tested in-process.
$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TESTLIB_OBJ) $(FS_LIBOBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ -lcriterion $(FUSE_LIBS) $(SSL_LIBS) -lsqlite3

check: lint all $(TEST_BIN)
	BUILD=$(BUILD) scripts/run-tests.sh $(TEST_BIN)

bench: all
	BUILD=$(BUILD) scripts/bench.sh

# Layout rules (run first by `make check`): no include cycle between core
# modules, no fs/ or FUSE header and no main() in core/, no file over 1,000
# lines, no function over 120.
lint:
	scripts/lint.sh

demo:
	scripts/demo.sh

# The unit goes where systemd looks for administrator units of that prefix
# ($(PREFIX)/lib/systemd/system: /usr/local/lib/... and /usr/lib/... are
# both on its search path), with ExecStart pointing at $(PREFIX)/bin.
# mount(8) finds jetsnapfs for fstab lines only in /bin/sh's default PATH
# (/usr/local/bin, /usr/bin, /bin): PREFIX /usr/local or /usr.
MANDIR     ?= $(PREFIX)/share/man
UNITDIR    ?= $(PREFIX)/lib/systemd/system
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include \
	    $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR)
	install -m 0755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 $(LIB) $(DESTDIR)$(PREFIX)/lib/
	install -m 0644 core/jetsnap.h $(DESTDIR)$(PREFIX)/include/
	install -m 0644 man/jetsnapfs.8 man/jetsnap.8 $(DESTDIR)$(MANDIR)/man8/
	sed 's|/usr/local/bin/jetsnapfs|$(PREFIX)/bin/jetsnapfs|' scripts/jetsnapfs@.service \
	    > $(DESTDIR)$(UNITDIR)/jetsnapfs@.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/jetsnapfs@.service

# libFuzzer harnesses (clang) for the RESP parser, the control grammar and
# the on-disk readers; each runs FUZZ_SECONDS (default 60).
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_SRC     := $(CORE_SRC) $(filter-out fs/daemon/main.c,$(FS_SRC))
fuzz: all
	@mkdir -p build-fuzz/corpus/readers
	@# Seeds for the readers: real files of a small instance.
	@if [ -z "$$(ls build-fuzz/corpus/readers)" ]; then \
	    d=$$(mktemp -d) && $(BUILD)/jetsnap create $$d/db --page-size 4096 --log-file-size 64K >/dev/null && \
	    for i in 1 2 3 4 5 6 7 8; do $(BUILD)/jetsnap put $$d/db key$$i value$$i >/dev/null; done && \
	    cp $$d/db/edb.log build-fuzz/corpus/readers/log && cp $$d/db/edb.chk build-fuzz/corpus/readers/chk && \
	    head -c 65536 $$d/db/jetsnap.edb > build-fuzz/corpus/readers/edb && rm -rf $$d; \
	fi
	@for h in resp control readers; do \
	    $(FUZZ_CC) -std=c11 -D_GNU_SOURCE -DJS_ARENA_MALLOC -g -O1 -fsanitize=fuzzer,address,undefined -Icore -Ifs $(FUZZ_CFLAGS) \
	        tests/fuzz/fuzz_$$h.c $(FUZZ_SRC) -o build-fuzz/fuzz_$$h $(FUSE_LIBS) $(SSL_LIBS) -pthread || exit 1; \
	    mkdir -p build-fuzz/corpus/$$h; \
	    build-fuzz/fuzz_$$h -max_total_time=$(FUZZ_SECONDS) -max_len=65536 build-fuzz/corpus/$$h || exit 1; \
	done

deps:
	scripts/deps.sh

clean:
	rm -rf build build-san build-*

help:
	@echo "targets: all check bench demo install deps clean (SANITIZE=1, BUILD=dir, PREFIX=dir)"

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
