# mpkit — plan and run pipeline model parallelism.
#
#   make             build the tools into bin/ (objects into build/)
#   make test        install missing Debian packages, build, run every CUnit suite
#   make demo        install, build, profile/plan/train/serve the demo model on this machine
#   make bench       install, build, planner/simulator/runtime speed table (medians)
#   make validate    install, build, predicted against measured on this machine
#   make asan        the tests under AddressSanitizer + UBSan (build-asan/)
#   make fuzz        each loader's libFuzzer target for FUZZ_SECONDS seconds
#   make deps        apt-get install what is missing
#   make fresh-check the README's two commands in fresh Debian 12 roots (debootstrap; slow)
#   make gpu-check   on a GPU machine: CUDA tests, GPU profiles, GPU runs, NCCL
#   make install     PREFIX=/usr/local DESTDIR=
#
# USE_CUDA=0/1 and USE_MPI=0/1 override detection; V=1 shows commands.
# The targets that install (test, demo, bench, validate, asan, fuzz) run
# `make deps` first and then build in a sub-make, which detects the toolkits
# afresh: the first build on a fresh machine already sees what deps installed.
# The detected configuration is kept in $(BUILD)/config.txt; when it changes,
# everything built from it is rebuilt.

PREFIX      ?= /usr/local
BUILD       ?= build
BIN         ?= bin
CC          ?= cc
CUDA_HOME   ?= /usr/local/cuda
NVCC        ?= $(CUDA_HOME)/bin/nvcc
MPICC       ?= mpicc
NVCC_ARCH   ?= -gencode arch=compute_75,code=sm_75 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
FUZZ_SECONDS ?= 20
SANITIZE    ?=

ifeq ($(V),1)
Q :=
else
Q := @
endif

# Each folder holds one job (docs/design.md has the map).
MODULES  := core sim planner exec/backend exec/comm exec/prof exec/run plots
CPPFLAGS += $(addprefix -I,$(MODULES)) -Itests -D_GNU_SOURCE
OPT      ?= -O2 -g
# CFLAGS/LDFLAGS from the command line are added to these, never replace them.
MP_CFLAGS  = $(OPT) -std=c11 -Wall -Wextra -pedantic -Wno-unused-parameter -MMD -MP -pthread $(SANITIZE) $(CFLAGS)
MP_LDFLAGS = -pthread $(SANITIZE) $(LDFLAGS)
LDLIBS   += -ljansson -lgsl -lopenblas -lm

# Goals that only install, clean or call scripts: they detect nothing and
# leave $(BUILD)/config.txt alone.
WRAPPER_GOALS := test demo bench validate asan fuzz deps clean fresh-check gpu-check
BUILD_GOALS   := $(filter-out $(WRAPPER_GOALS),$(or $(MAKECMDGOALS),all))

# ---------------------------------------------------------------- detection
# Each optional toolkit is detected by compiling and linking a tiny program.
try_link = $(shell printf '$(1)\nint main(void){return 0;}\n' | $(CC) -x c - -o /dev/null $(2) >/dev/null 2>&1 && echo 1 || echo 0)

CUDA_FLAGS := -I$(CUDA_HOME)/include
CUDA_LIBS  := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart
ifneq ($(BUILD_GOALS),)
ifeq ($(origin USE_CUDA),undefined)
USE_CUDA := $(call try_link,#include <cuda_runtime.h>\n#include <cublas_v2.h>,$(CUDA_FLAGS) $(CUDA_LIBS))
ifeq ($(USE_CUDA),1)
USE_CUDA := $(shell test -x $(NVCC) && echo 1 || echo 0)
endif
endif
ifeq ($(USE_CUDA),1)
USE_NCCL ?= $(call try_link,#include <nccl.h>,$(CUDA_FLAGS) $(CUDA_LIBS) -lnccl)
else
USE_NCCL := 0
endif
ifeq ($(origin USE_MPI),undefined)
USE_MPI := $(shell printf '#include <mpi.h>\nint main(void){return MPI_Init(0,0);}\n' | $(MPICC) -x c - -o /dev/null >/dev/null 2>&1 && echo 1 || echo 0)
endif
HAVE_GNUPLOT := $(shell command -v gnuplot >/dev/null 2>&1 && echo 1 || echo 0)
endif

# ---------------------------------------------------------------- sources
# A tool's main is named in TOOL_MAINS; every other .c in a module goes into
# libmpkit.a. Files ending _cuda.c/_nccl.c/.cu/_mpi.c build only with their toolkit.
TOOL_MAINS := planner/mpplan.c exec/prof/mpprof.c exec/run/mprun.c plots/mpplot.c
TOOLS      := $(notdir $(TOOL_MAINS:.c=))
ALL_C      := $(foreach m,$(MODULES),$(wildcard $(m)/*.c))
LIB_C      := $(filter-out $(TOOL_MAINS) %_cuda.c %_nccl.c %_mpi.c,$(ALL_C))
LIB_CU     :=
ifeq ($(USE_CUDA),1)
LIB_C      += $(filter %_cuda.c,$(ALL_C))
LIB_CU     += $(foreach m,$(MODULES),$(wildcard $(m)/*.cu))
CPPFLAGS   += -DMP_HAVE_CUDA=1
TOOL_LIBS  += $(CUDA_LIBS)
CUDA_OBJ_FLAGS := $(CUDA_FLAGS)
endif
ifeq ($(USE_NCCL),1)
LIB_C      += $(filter %_nccl.c,$(ALL_C))
CPPFLAGS   += -DMP_HAVE_NCCL=1
TOOL_LIBS  += -lnccl
endif
ifeq ($(USE_MPI),1)
LIB_C      += $(filter %_mpi.c,$(ALL_C))
CPPFLAGS   += -DMP_HAVE_MPI=1
MPI_LINK   := $(shell $(MPICC) --showme:link 2>/dev/null)
MPI_INC    := $(shell $(MPICC) --showme:compile 2>/dev/null)
TOOL_LIBS  += $(MPI_LINK)
endif

LIB_OBJ    := $(LIB_C:%.c=$(BUILD)/%.o) $(LIB_CU:%.cu=$(BUILD)/%.cu.o)
LIB        := $(BUILD)/libmpkit.a
TEST_C     := $(wildcard tests/test_*.c)
TEST_BINS  := $(TEST_C:tests/%.c=$(BUILD)/tests/%)
TEST_SUPPORT := $(BUILD)/tests/testutil.o
BENCH_C    := $(wildcard tests/bench_*.c)
BENCH_BINS := $(BENCH_C:tests/%.c=$(BUILD)/tests/%)
FUZZ_C     := $(wildcard tests/fuzz_*.c)
TOOL_BINS  := $(TOOLS:%=$(BIN)/%)
LINK_LIBS   = $(LIB) $(LDLIBS) $(TOOL_LIBS) $(if $(LIB_CU),-lstdc++)

# ---------------------------------------------------------------- configuration
# What changes the objects, kept in $(BUILD)/config.txt: rewritten (at parse
# time, before make compares times) only when it differs, and a prerequisite
# of every object, library and binary, so a changed configuration rebuilds
# all of them and never links stale objects.
CONFIG_FILE := $(BUILD)/config.txt
CONFIG_TEXT := USE_CUDA=$(USE_CUDA) USE_NCCL=$(USE_NCCL) USE_MPI=$(USE_MPI) | CC=$(CC) NVCC=$(NVCC) \
  MPICC=$(MPICC) | CPPFLAGS=$(CPPFLAGS) | CFLAGS=$(MP_CFLAGS) $(CUDA_OBJ_FLAGS) $(MPI_INC) | \
  NVCC_ARCH=$(NVCC_ARCH) | LDFLAGS=$(MP_LDFLAGS) | LIBS=$(LDLIBS) $(TOOL_LIBS)
ifneq ($(BUILD_GOALS),)
ifneq ($(strip $(CONFIG_TEXT)),$(strip $(file <$(CONFIG_FILE))))
$(shell mkdir -p $(BUILD))
$(file >$(CONFIG_FILE),$(strip $(CONFIG_TEXT)))
endif
endif

.PHONY: all test bench asan fuzz deps install clean demo gpu-check config validate fresh-check \
        test-only demo-only bench-only validate-only fuzz-only
.SECONDARY:
.DEFAULT_GOAL := all

all: config $(TOOL_BINS)

config:
	@printf 'mpkit build: CUDA+cuBLAS %s  NCCL %s  MPI %s  gnuplot %s\n' \
	  $(if $(filter 1,$(USE_CUDA)),✓,✗) $(if $(filter 1,$(USE_NCCL)),✓,✗) \
	  $(if $(filter 1,$(USE_MPI)),✓,✗) $(if $(filter 1,$(HAVE_GNUPLOT)),✓,✗)
ifeq ($(origin USE_CUDA),command line)
ifeq ($(USE_CUDA),1)
	@printf '#include <cuda_runtime.h>\nint main(void){return 0;}\n' | $(CC) -x c - -o /dev/null $(CUDA_FLAGS) $(CUDA_LIBS) \
	  || { echo "USE_CUDA=1 but the CUDA toolkit does not link (CUDA_HOME=$(CUDA_HOME))"; exit 1; }
endif
endif
ifeq ($(origin USE_MPI),command line)
ifeq ($(USE_MPI),1)
	@printf '#include <mpi.h>\nint main(void){return MPI_Init(0,0);}\n' | $(MPICC) -x c - -o /dev/null \
	  || { echo "USE_MPI=1 but $(MPICC) cannot build an MPI program (make deps installs OpenMPI)"; exit 1; }
endif
endif

# ---------------------------------------------------------------- rules
$(BUILD)/%.o: %.c $(CONFIG_FILE)
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CC    $<")
	$(Q)$(CC) $(CPPFLAGS) $(MP_CFLAGS) $(CUDA_OBJ_FLAGS) $(if $(filter %_mpi.c,$<),$(MPI_INC)) -c $< -o $@

# The CPU backend's elementwise loops (exp, tanh, layernorm) vectorise at -O3;
# no -ffast-math (-fno-trapping-math lets the clamps vectorise; it changes no
# result), so the results stay bitwise those of -O2.
$(BUILD)/exec/backend/backend_cpu.o: MP_CFLAGS += -O3 -fno-trapping-math

$(BUILD)/%.cu.o: %.cu $(CONFIG_FILE)
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  NVCC  $<")
	$(Q)$(NVCC) -O2 -std=c++17 $(NVCC_ARCH) $(addprefix -I,$(MODULES)) -c $< -o $@

$(LIB): $(LIB_OBJ) $(CONFIG_FILE)
	$(if $(Q),@echo "  AR    $@")
	$(Q)rm -f $@ && ar rcs $@ $(LIB_OBJ)

# One link rule for every tool: bin/TOOL from its main object and the library.
$(foreach t,$(TOOL_MAINS),$(eval $(BIN)/$(notdir $(t:.c=)): $(BUILD)/$(t:.c=.o) $(LIB) $(CONFIG_FILE)))
$(TOOL_BINS):
	@mkdir -p $(BIN)
	$(if $(Q),@echo "  LINK  $@")
	$(Q)$(CC) $(MP_LDFLAGS) $< $(LINK_LIBS) -o $@

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TEST_SUPPORT) $(LIB) $(CONFIG_FILE)
	$(if $(Q),@echo "  LINK  $@")
	$(Q)$(CC) $(MP_LDFLAGS) $< $(TEST_SUPPORT) $(LIB) $(LDLIBS) -lcunit $(TOOL_LIBS) -o $@ $(if $(LIB_CU),-lstdc++)

$(CONFIG_FILE): ;

# ---------------------------------------------------------------- targets
# Each installing target: deps, then the work in a sub-make that detects anew.
test demo bench validate fuzz: deps
	@$(MAKE) --no-print-directory $@-only

# Tests run with the tools built, from the repo root; MPKIT_BIN points at bin/.
test-only: all $(TEST_BINS)
	@MPKIT_BIN=$(abspath $(BIN)) MPPLOT_SCRIPTS=$(abspath plots) ./tests/run_all.sh $(TEST_BINS)

bench-only: all $(BENCH_BINS)
	@for b in $(BENCH_BINS); do OPENBLAS_NUM_THREADS=1 $$b || exit 1; done

demo-only: all
	@./plots/demo.sh

validate-only: all
	@./plots/validate.sh

asan:
	@$(MAKE) --no-print-directory test BUILD=build-asan BIN=build-asan/bin CC=clang \
	  SANITIZE="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  OPT="-O1 -g" USE_CUDA=0 USE_NCCL=0 USE_MPI=0

fuzz-only:
	@mkdir -p $(BUILD)/fuzz
	@$(MAKE) --no-print-directory BUILD=build-fuzz CC=clang USE_CUDA=0 USE_NCCL=0 USE_MPI=0 \
	    SANITIZE="-fsanitize=fuzzer-no-link,address,undefined" OPT="-O1 -g" build-fuzz/libmpkit.a >/dev/null
	@for f in $(FUZZ_C); do n=$$(basename $$f .c); \
	  echo "  FUZZ  $$n ($(FUZZ_SECONDS)s)"; \
	  clang -std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=fuzzer,address,undefined $(addprefix -I,$(MODULES)) $$f \
	    build-fuzz/libmpkit.a $(LDLIBS) -o $(BUILD)/fuzz/$$n || exit 1; \
	  mkdir -p $(BUILD)/fuzz/$$n.corpus; \
	  $(BUILD)/fuzz/$$n -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
	    $(BUILD)/fuzz/$$n.corpus tests/fixtures profiles >$(BUILD)/fuzz/$$n.log 2>&1 \
	    || { tail -30 $(BUILD)/fuzz/$$n.log; echo "fuzz: $$n found a crash"; exit 1; }; \
	  tail -1 $(BUILD)/fuzz/$$n.log; \
	done

DEB_PACKAGES := build-essential pkg-config jq libjansson-dev libgsl-dev libcunit1-dev \
                libopenblas-dev gnuplot-nox openmpi-bin libopenmpi-dev clang iproute2
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null \
	    || { echo "make deps: apt-get install failed for:$$missing"; exit 1; }; \
	fi

fresh-check:
	@./tests/fresh_machine.sh

gpu-check:
	@./tests/gpu_check.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/mpkit/profiles
	install -m 755 $(TOOL_BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 profiles/*.json $(DESTDIR)$(PREFIX)/share/mpkit/profiles/
	install -d $(DESTDIR)$(PREFIX)/share/mpkit/plots
	install -m 644 plots/*.gp $(DESTDIR)$(PREFIX)/share/mpkit/plots/

clean:
	rm -rf build build-asan build-fuzz bin out

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
