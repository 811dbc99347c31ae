# mpkit — plan and run pipeline model parallelism.
#
#   make            build the tools into bin/ (objects into build/)
#   make test       install missing Debian packages, build, run every CUnit suite
#   make demo       profile/plan the demo model end to end on this machine
#   make bench      planner and simulator speed table (medians of several runs)
#   make asan       the tests under AddressSanitizer + UBSan (build-asan/)
#   make fuzz       each loader's libFuzzer target for FUZZ_SECONDS seconds
#   make deps       apt-get install what is missing
#   make gpu-check  on a GPU machine: CUDA tests, GPU profile, a plan
#   make install    PREFIX=/usr/local DESTDIR=
#
# USE_CUDA=0/1 and USE_MPI=0/1 override detection; V=1 shows commands.

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

MODULES  := core sim planner exec plots
CPPFLAGS += $(addprefix -I,$(MODULES)) -Itests -D_GNU_SOURCE
OPT      ?= -O2 -g
# CFLAGS/LDFLAGS from the command line are added to these, never replace them.
MP_CFLAGS  = $(OPT) -std=c11 -Wall -Wextra -pedantic -Wno-unused-parameter -MMD -MP -pthread $(SANITIZE) $(CFLAGS)
MP_LDFLAGS = -pthread $(SANITIZE) $(LDFLAGS)
LDLIBS   += -ljansson -lgsl -lopenblas -lm

# ---------------------------------------------------------------- detection
# Each optional toolkit is detected by compiling and linking a tiny program.
try_link = $(shell printf '$(1)\nint main(void){return 0;}\n' | $(CC) -x c - -o /dev/null $(2) >/dev/null 2>&1 && echo 1 || echo 0)

CUDA_FLAGS := -I$(CUDA_HOME)/include
CUDA_LIBS  := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart
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

# ---------------------------------------------------------------- sources
# A tool's main is <module>/<tool>.c; every other .c in a module goes into
# libmpkit.a. Files ending _cuda.c/_nccl.c/.cu/_mpi.c build only with their toolkit.
TOOL_MAINS := $(wildcard planner/mpplan.c exec/mpprof.c exec/mprun.c plots/mpplot.c)
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
CC_MPI     := $(MPICC)
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

.PHONY: all test bench asan fuzz deps install clean demo gpu-check config validate
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

# ---------------------------------------------------------------- rules
$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CC    $<")
	$(Q)$(CC) $(CPPFLAGS) $(MP_CFLAGS) $(CUDA_OBJ_FLAGS) $(if $(filter %_mpi.c,$<),$(MPI_INC)) -c $< -o $@

$(BUILD)/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  NVCC  $<")
	$(Q)$(NVCC) -O2 -std=c++17 $(NVCC_ARCH) $(addprefix -I,$(MODULES)) -c $< -o $@

$(LIB): $(LIB_OBJ)
	$(if $(Q),@echo "  AR    $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN)/%: $(BUILD)/planner/%.o $(LIB)
	@mkdir -p $(BIN)
	$(if $(Q),@echo "  LINK  $@")
	$(Q)$(CC) $(MP_LDFLAGS) $< $(LIB) $(LDLIBS) $(TOOL_LIBS) -o $@ $(if $(LIB_CU),-lstdc++)
$(BIN)/%: $(BUILD)/exec/%.o $(LIB)
	@mkdir -p $(BIN)
	$(if $(Q),@echo "  LINK  $@")
	$(Q)$(CC) $(MP_LDFLAGS) $< $(LIB) $(LDLIBS) $(TOOL_LIBS) -o $@ $(if $(LIB_CU),-lstdc++)
$(BIN)/%: $(BUILD)/plots/%.o $(LIB)
	@mkdir -p $(BIN)
	$(if $(Q),@echo "  LINK  $@")
	$(Q)$(CC) $(MP_LDFLAGS) $< $(LIB) $(LDLIBS) $(TOOL_LIBS) -o $@ $(if $(LIB_CU),-lstdc++)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TEST_SUPPORT) $(LIB)
	$(if $(Q),@echo "  LINK  $@")
	$(Q)$(CC) $(MP_LDFLAGS) $< $(TEST_SUPPORT) $(LIB) $(LDLIBS) -lcunit $(TOOL_LIBS) -o $@ $(if $(LIB_CU),-lstdc++)

# ---------------------------------------------------------------- targets
# Tests run with the tools built, from the repo root; MPKIT_BIN points at bin/.
test: deps
	@$(MAKE) --no-print-directory all $(TEST_BINS)
	@MPKIT_BIN=$(abspath $(BIN)) MPPLOT_SCRIPTS=$(abspath plots) ./tests/run_all.sh $(TEST_BINS)

bench: deps
	@$(MAKE) --no-print-directory all $(BENCH_BINS)
	@for b in $(BENCH_BINS); do OPENBLAS_NUM_THREADS=1 $$b || exit 1; done

asan:
	@$(MAKE) --no-print-directory test BUILD=build-asan BIN=build-asan/bin CC=clang \
	  SANITIZE="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  OPT="-O1 -g" USE_CUDA=0 USE_NCCL=0 USE_MPI=0

fuzz: deps
	@mkdir -p $(BUILD)/fuzz
	@for f in $(FUZZ_C); do n=$$(basename $$f .c); \
	  echo "  FUZZ  $$n ($(FUZZ_SECONDS)s)"; \
	  $(MAKE) --no-print-directory BUILD=build-fuzz CC=clang USE_CUDA=0 USE_NCCL=0 USE_MPI=0 \
	    SANITIZE="-fsanitize=fuzzer-no-link,address,undefined" OPT="-O1 -g" build-fuzz/libmpkit.a >/dev/null || exit 1; \
	  clang -std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=fuzzer,address,undefined $(addprefix -I,$(MODULES)) $$f \
	    build-fuzz/libmpkit.a $(LDLIBS) -o $(BUILD)/fuzz/$$n || exit 1; \
	  mkdir -p $(BUILD)/fuzz/$$n.corpus; \
	  $(BUILD)/fuzz/$$n -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
	    $(BUILD)/fuzz/$$n.corpus tests/fixtures profiles >$(BUILD)/fuzz/$$n.log 2>&1 \
	    || { tail -30 $(BUILD)/fuzz/$$n.log; echo "fuzz: $$n found a crash"; exit 1; }; \
	  tail -1 $(BUILD)/fuzz/$$n.log; \
	done

DEB_PACKAGES := build-essential pkg-config jq libjansson-dev libgsl-dev libcunit1-dev \
                libopenblas-dev gnuplot-nox openmpi-bin libopenmpi-dev clang
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

demo: deps all
	@./plots/demo.sh

validate: deps all
	@./plots/validate.sh

gpu-check:
	@./exec/gpu_check.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/mpkit/profiles
	install -m 755 $(TOOL_BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 profiles/*.json $(DESTDIR)$(PREFIX)/share/mpkit/profiles/
	install -d $(DESTDIR)$(PREFIX)/share/mpkit/plots
	install -m 644 plots/*.gp $(DESTDIR)$(PREFIX)/share/mpkit/plots/

clean:
	rm -rf build build-asan build-fuzz bin out

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
