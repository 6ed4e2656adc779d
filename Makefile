# Makefile -- gatewayd, its tests, the demo and the benchmarks.
SHELL := /bin/bash
#
#   make            build bin/gatewayd
#   make deps       install every Debian package (needs root or sudo)
#   make demo       a campaign end to end into the outbox, against a private
#                   redis-server; prints a summary
#   make test       unit tests (plain and under ASan+UBSan) and integration
#                   tests against real peers, with the sanitizer build
#   make fuzz       build the libFuzzer targets (clang)
#   make style      check formatting with clang-format

CC       ?= gcc
PKGS     := libuv hiredis libcurl libxml-2.0 jansson libh2o glib-2.0 openssl \
            libsmpp34 cairo pangocairo gmime-3.0
VERSION  := $(shell git describe --always --dirty 2>/dev/null || echo dev)
COMMIT   := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
WARN     := -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE
CFLAGS   ?= -O2 -g
PKGCFLAGS = $(shell pkg-config --cflags $(PKGS))
PKGLIBS   = $(shell pkg-config --libs $(PKGS))
ALLCFLAGS = $(WARN) $(CFLAGS) $(PKGCFLAGS) -I. -Icommon \
            -DGW_VERSION='"$(VERSION)"' -DGW_COMMIT='"$(COMMIT)"'
SANFLAGS := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined \
            -fno-omit-frame-pointer

COMMON_SRC   := common/buf.c common/err.c common/fsutil.c common/log.c common/utf8.c \
                common/token.c
TEMPLATE_SRC := templates/mustache.c templates/mustache_json.c \
                templates/template.c templates/html.c templates/links.c
CHANNEL_SRC  := $(sort $(wildcard channels/*.c))
SCHED_SRC    := $(sort $(wildcard scheduler/*.c))
GATEWAY_SRC  := gateway/config.c gateway/toml.c gateway/redis.c \
                gateway/redis_uv.c gateway/job.c gateway/state.c \
                gateway/track.c gateway/intake.c gateway/expand.c \
                gateway/dispatch.c gateway/metrics.c gateway/http.c \
                gateway/tplcache.c gateway/inbound.c gateway/policy.c \
                gateway/remind.c gateway/api.c gateway/roi.c \
                gateway/unsub.c gateway/hits.c \
                gateway/bounce.c
LIB_SRC      := $(COMMON_SRC) $(TEMPLATE_SRC) $(CHANNEL_SRC) $(SCHED_SRC) \
                $(GATEWAY_SRC)
MAIN_SRC     := gateway/main.c
HEADERS      := $(wildcard common/*.h gateway/*.h channels/*.h templates/*.h \
                  scheduler/*.h)

UNIT_TESTS := $(sort $(basename $(notdir $(wildcard tests/unit/test_*.c))))

OBJ     := $(LIB_SRC:%.c=build/obj/%.o)
SAN_OBJ := $(LIB_SRC:%.c=build/san/%.o)

all: bin/gatewayd bin/gatewayctl

build/obj/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(ALLCFLAGS) -c $< -o $@

build/san/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	@echo "  CC san  $<"
	@$(CC) $(ALLCFLAGS) $(SANFLAGS) -c $< -o $@

bin/gatewayd: $(OBJ) build/obj/gateway/main.o
	@mkdir -p bin
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $^ $(PKGLIBS) -o $@

bin/gatewayd-san: $(SAN_OBJ) build/san/gateway/main.o
	@mkdir -p bin
	@echo "  LD san  $@"
	@$(CC) $(SANFLAGS) $^ $(PKGLIBS) -o $@

bin/gatewayctl: tools/gatewayctl.c $(OBJ)
	@mkdir -p bin
	@echo "  LD      $@"
	@$(CC) $(ALLCFLAGS) $< $(OBJ) $(PKGLIBS) -o $@

build/bench/%: tests/unit/%.c $(OBJ)
	@mkdir -p build/bench
	@echo "  LD      $@"
	@$(CC) $(ALLCFLAGS) $< $(OBJ) $(PKGLIBS) -o $@

BENCHES := bench_mustache bench_template bench_fax_render
# Every case three times (median, min, max), a table and bench/results/*.json;
# BENCH_ARGS="--quick" for a smoke run. See bench/README.md.
BENCH_ARGS ?=
bench: $(BENCHES:%=build/bench/%) bin/gatewayd build/fakes/fake_smsc
	/usr/bin/python3 bench/run.py $(BENCH_ARGS)

build/test/%: tests/unit/%.c $(OBJ)
	@mkdir -p build/test
	@echo "  LD      $@"
	@$(CC) $(ALLCFLAGS) $< $(OBJ) $(PKGLIBS) -lcmocka -o $@

build/test-san/%: tests/unit/%.c $(SAN_OBJ)
	@mkdir -p build/test-san
	@echo "  LD san  $@"
	@$(CC) $(ALLCFLAGS) $(SANFLAGS) $< $(SAN_OBJ) $(PKGLIBS) -lcmocka -o $@

unit: $(UNIT_TESTS:%=build/test/%) $(UNIT_TESTS:%=build/test-san/%)
	@set -e; for t in $(UNIT_TESTS); do \
	    echo "== unit: $$t"; build/test/$$t; \
	    echo "== unit (asan+ubsan): $$t"; build/test-san/$$t >/dev/null; \
	done

integration: bin/gatewayd bin/gatewayd-san
	GATEWAYD=$(CURDIR)/bin/gatewayd-san /usr/bin/python3 \
	    tests/integration/run.py

test: unit fakes integration fuzz-run

# The C fake SMSC (tests and benchmarks) and its self-test.
FAKE_PKGS := libsmpp34 libuv
FAKE_SRC  := tests/fakes/fake_smsc.c common/buf.c common/err.c
build/fakes/fake_smsc: $(FAKE_SRC) common/buf.h
	@mkdir -p build/fakes
	@echo "  LD      $@"
	@$(CC) $(WARN) $(CFLAGS) -I. -Icommon $(shell pkg-config --cflags $(FAKE_PKGS)) $(FAKE_SRC) $(shell pkg-config --libs $(FAKE_PKGS)) -o $@
build/fakes/fake_smsc-san: $(FAKE_SRC) common/buf.h
	@mkdir -p build/fakes
	@echo "  LD san  $@"
	@$(CC) $(WARN) $(SANFLAGS) -I. -Icommon $(shell pkg-config --cflags $(FAKE_PKGS)) $(FAKE_SRC) $(shell pkg-config --libs $(FAKE_PKGS)) -o $@
fakes: build/fakes/fake_smsc build/fakes/fake_smsc-san
	FAKE_SMSC=build/fakes/fake_smsc-san /usr/bin/python3 tests/fakes/test_fake_smsc.py

demo: bin/gatewayd
	/usr/bin/python3 tools/demo.py

deps:
	./.ci/deps.sh

FUZZERS := $(sort $(basename $(notdir $(wildcard tests/fuzz/fuzz_*.c))))
FUZZ_SECONDS ?= 10
fuzz: $(FUZZERS:%=build/fuzz/%)

# A short run of every fuzzer (ASan+UBSan), seeded from the test vectors;
# part of make test. Longer: make fuzz-run FUZZ_SECONDS=600
fuzz-run: fuzz
	@set -e; for f in $(FUZZERS); do \
	    mkdir -p build/fuzz/corpus-$$f; \
	    seeds=; \
	    case $$f in \
	    fuzz_toml) seeds=../shared/vectors/toml-test/valid ;; \
	    fuzz_template) seeds=tests/unit/data/newsletters ;; \
	    fuzz_fax_render) seeds=tests/integration/templates/fax_offer ;; \
	    fuzz_links) seeds=tests/unit/data/newsletters ;; \
	    fuzz_dsn) seeds=tests/unit/data/dsn ;; \
	    esac; \
	    echo "== fuzz: $$f for $(FUZZ_SECONDS)s"; \
	    build/fuzz/$$f -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	        -rss_limit_mb=2048 -print_final_stats=1 \
	        build/fuzz/corpus-$$f $$seeds 2>&1 | \
	        grep -E "stat::number_of_executed_units|ERROR|SUMMARY" ; \
	    test $${PIPESTATUS[0]:-0} -eq 0; \
	done

# The library is compiled once with coverage (fuzzer-no-link) and linked
# into every target.
FUZZ_FLAGS := -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_OBJ   := $(LIB_SRC:%.c=build/fuzzobj/%.o)
build/fuzzobj/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	@echo "  CC fuzz $<"
	@clang $(WARN) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link $(PKGCFLAGS) \
	    -I. -Icommon -c $< -o $@
build/fuzz/%: tests/fuzz/%.c $(FUZZ_OBJ)
	@mkdir -p build/fuzz
	@echo "  LD fuzz $@"
	@clang $(WARN) $(FUZZ_FLAGS) -fsanitize=fuzzer $(PKGCFLAGS) -I. -Icommon \
	    $^ $(PKGLIBS) -o $@

style:
	clang-format --dry-run --Werror $(wildcard common/*.[ch] gateway/*.[ch] \
	    channels/*.[ch] templates/*.[ch] scheduler/*.[ch])

clean:
	rm -rf build bin

.PHONY: all unit integration test demo deps fuzz fuzz-run style clean bench fakes
.SECONDARY:
