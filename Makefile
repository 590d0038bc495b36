# fxscreen build.  `make` builds build/fxscreen and build/libfxscreen.a.
#   make              CPU build (+ CUDA kernels when nvcc is found)
#   make test         unit + integration + Python-reference + ASan/UBSan + fuzz smoke
#   make demo         synthetic radiographs -> prep (see README)
#   make static       build-static/fxscreen with HDF5/libpng/libtiff/libyaml linked statically
#   make gpu-bundle   build-gpu.tar.xz: stripped static fxscreen, GPU tests and bench/infer_fx to
#                     carry to a GPU machine (there: tar xJf build-gpu.tar.xz, then
#                     scripts/test-gpu.sh build-gpu and bench/gpu.sh build-gpu)
#   make deps         install the Debian packages the build, tests and demo need
#   make bench        bench/decode (writes bench/RESULTS.md)
#   make bench-infer  fxscreen vs PyTorch vs onnxruntime CPU inference (BENCH_ARGS=--quick)
#   make bench-run    end-to-end `fxscreen run` vs a Python peer (FX_BENCH_N, FX_BENCH_REPS)
#   make bench-serve  fxscreen serve vs a Flask + PyTorch server under wrk (bench/serve.sh)
#   make check-long   longer fuzz runs and the memory-flatness soak
# Options: CUDA=0 (skip CUDA even if nvcc exists), STATIC=1, BUILD=dir, CUDA_HOME=/path.

BUILD   ?= build
CC      ?= cc
CLANG   ?= clang
STATIC  ?= 0
CUDA    ?= auto
VERSION := 0.1.0

PKGS        := libpng libtiff-4 libjpeg libopenjp2 yaml-0.1 hdf5 openblas libprotobuf-c libdeflate zlib libcjson
# `serve` (libmicrohttpd, OpenSSL's base64) is left out of static builds: the GPU
# machine has no libmicrohttpd/GnuTLS, and Debian ships no static GnuTLS.
SERVE       ?= $(if $(filter 1,$(STATIC)),0,1)
ifeq ($(SERVE),1)
  PKGS      += libmicrohttpd libcrypto
endif
# Archives as sources (libarchive), also left out of static builds (its
# compression libraries would all have to come along).
ARCHIVE     ?= $(if $(filter 1,$(STATIC)),0,1)
ifeq ($(ARCHIVE),1)
  PKGS      += libarchive
endif
# DICOM through GDCM (C++, behind src/io/dicom_internal.h); left out of static
# builds too (Debian ships GDCM as shared libraries only).
DICOM       ?= $(if $(filter 1,$(STATIC)),0,1)
GDCM_INC    := $(firstword $(wildcard /usr/include/gdcm-*))
ifeq ($(DICOM),1)
  GDCM_LIBS := -lgdcmMSFF -lgdcmDSED -lgdcmCommon -lstdc++
endif
# ROAD's imputation (eval --faithfulness) solves its sparse systems with
# CHOLMOD (SuiteSparse); left out of static builds (its BLAS/LAPACK/METIS
# chain would all have to come along).
ROAD        ?= $(if $(filter 1,$(STATIC)),0,1)
ifeq ($(ROAD),1)
  GDCM_LIBS += -lcholmod
endif
PKG_CFLAGS  := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
ifeq ($(STATIC),1)
  # Static archives of the image/HDF5 stack (from Debian's -dev packages) so the
  # binary runs on a GPU machine without them; libc, libm, libgomp, libstdc++ (libLerc
  # is C++) and CUDA stay shared, and so does cJSON (Debian ships no libcjson.a:
  # make gpu-bundle carries libcjson.so.1 in build-gpu/lib).
  PKG_LIBS := -Wl,-Bstatic $(shell pkg-config --static --libs-only-l libpng libtiff-4 libjpeg libopenjp2 yaml-0.1 | sed 's/-lm //g; s/-lpthread//g') \
              -L/usr/lib/x86_64-linux-gnu/hdf5/serial -lhdf5 -lsz -laec -lz \
              -L/usr/lib/x86_64-linux-gnu/openblas-pthread -lopenblas -lprotobuf-c \
              -Wl,-Bdynamic -lcjson -lstdc++ -lgfortran -lcrypto -lcurl -ldl -lm -lpthread
else
  PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null) $(GDCM_LIBS) -lm -lpthread
endif

# Messages are bounded buffers by design (FX_ERROR_MSG_MAX): truncation is intended.
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-format-truncation -Iinclude -Isrc -I$(BUILD)/gen $(PKG_CFLAGS) \
               -DFX_VERSION=\"$(VERSION)\" -fopenmp -MMD -MP
CFLAGS   ?= -O2 -g
ALL_CFLAGS = $(BASE_CFLAGS) $(CFLAGS)
LDLIBS   = $(PKG_LIBS) -fopenmp

# ---- CUDA: probed once, built only when nvcc exists -------------------------
ifeq ($(CUDA),0)
  NVCC :=
else
  NVCC := $(shell command -v nvcc 2>/dev/null || { test -n "$(CUDA_HOME)" && test -x "$(CUDA_HOME)/bin/nvcc" && echo "$(CUDA_HOME)/bin/nvcc"; })
endif
ifneq ($(NVCC),)
  CUDA_ROOT   := $(abspath $(dir $(NVCC))/..)
  CUDA_LIBDIR := $(firstword $(wildcard $(CUDA_ROOT)/lib64 $(CUDA_ROOT)/lib))
  NVCCFLAGS   := -O2 -std=c++17 -Iinclude -Isrc -Xcompiler -Wall,-Wextra,-Werror \
                 -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -MMD -MP
  ALL_CFLAGS  += -DFX_HAVE_CUDA=1 -I$(CUDA_ROOT)/include
  CUDA_LIBS   := -L$(CUDA_LIBDIR) -Wl,-rpath,$(CUDA_LIBDIR) -lcudnn -lcublas -lcudart -lstdc++
  CUDNN_VER   := $(shell sed -n 's/^\#define CUDNN_MAJOR \([0-9]*\)/\1/p' $(CUDA_ROOT)/include/cudnn_version.h 2>/dev/null)
  FEAT_CUDA   := yes ($(shell $(NVCC) --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'), cuDNN $(or $(CUDNN_VER),?))
else
  FEAT_CUDA   := no
endif

LIB_SRC  := $(sort $(wildcard src/*/*.c))
LIB_SRC  := $(filter-out src/cli/%,$(LIB_SRC)) $(BUILD)/gen/onnx.pb-c.c
ifneq ($(SERVE),1)
  LIB_SRC  := $(filter-out src/serve/%,$(LIB_SRC))
  BASE_CFLAGS += -DFX_NO_SERVE
endif
LIB_CXX  := $(if $(filter 1,$(DICOM)),$(wildcard src/*/*.cpp))
ifneq ($(DICOM),1)
  BASE_CFLAGS += -DFX_NO_DICOM
endif
ifneq ($(ARCHIVE),1)
  BASE_CFLAGS += -DFX_NO_ARCHIVE
endif
ifneq ($(ROAD),1)
  BASE_CFLAGS += -DFX_NO_ROAD
endif
CXXFLAGS_ALL = -std=c++17 -Wall -Wextra -Werror -Iinclude -Isrc -I$(GDCM_INC) -MMD -MP
CLI_SRC  := $(wildcard src/cli/*.c)
CU_SRC   := $(if $(NVCC),$(wildcard kernels/*.cu))
TEST_SRC := $(wildcard tests/test_*.c)
TOOL_SRC := $(wildcard tests/tools/*.c)
BENCH_SRC:= $(wildcard bench/*.c)

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(LIB_CXX:%.cpp=$(BUILD)/obj/%.o) $(CU_SRC:%.cu=$(BUILD)/obj/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
LIBA     := $(BUILD)/libfxscreen.a
BIN      := $(BUILD)/fxscreen
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TOOLS    := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%)
BENCHES  := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

# ASan+UBSan build of the library and unit tests (CPU only).
ASAN_DIR   := $(BUILD)/asan
ASAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ASAN_OBJ   := $(LIB_SRC:%.c=$(ASAN_DIR)/obj/%.o) $(LIB_CXX:%.cpp=$(ASAN_DIR)/obj/%.o)
ASAN_TESTS := $(TEST_SRC:tests/%.c=$(ASAN_DIR)/tests/%)
ASAN_BIN   := $(ASAN_DIR)/fxscreen

# libFuzzer targets: one per decoder, built with clang from the io sources.
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_LIBSRC := src/core/status.c src/core/image.c $(wildcard src/io/*.c)
FUZZ_DEFS   := -DFX_NO_DICOM
HAVE_LIBFUZZER := $(shell echo 'int LLVMFuzzerTestOneInput(const char*d,unsigned long n){(void)d;(void)n;return 0;}' | $(CLANG) -x c -fsanitize=fuzzer - -o /dev/null 2>/dev/null && echo 1)

.PHONY: all lib test test-run demo-run test-gpu demo static gpu-bundle deps bench bench-infer bench-run bench-serve check-long clean features tools format
all: features $(BIN) $(LIBA)

features:
	@echo "fxscreen $(VERSION): CUDA $(FEAT_CUDA), OpenMP yes, static $(if $(filter 1,$(STATIC)),yes,no), build $(BUILD)"

lib: $(LIBA)

$(LIBA): $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(BIN): $(CLI_OBJ) $(LIBA)
	$(CC) $(ALL_CFLAGS) -o $@ $(CLI_OBJ) $(LIBA) $(LDLIBS) $(CUDA_LIBS)

# The ONNX schema subset, compiled by protoc-c (one rule makes both files);
# objects wait for the header (order-only: -MMD tracks it after that).
$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: src/model/%.proto
	@mkdir -p $(@D)
	protoc-c --c_out=$(@D) --proto_path=src/model $<
$(LIB_OBJ) $(ASAN_OBJ): | $(BUILD)/gen/onnx.pb-c.h

# The fast-path ops: their AVX2 clones (FX_SIMD_CLONES) may fuse a*b + c.
FAST_OPS_OBJ := $(patsubst %,$(BUILD)/obj/src/ops/%.o,conv_fast depthwise winograd ops_fast)
$(FAST_OPS_OBJ): ALL_CFLAGS += -ffp-contract=fast

# The web app is embedded by .incbin (src/serve/assets.c): rebuild when it changes.
SERVE_WEB := $(wildcard src/serve/web/*)
$(BUILD)/obj/src/serve/assets.o $(ASAN_DIR)/obj/src/serve/assets.o: $(SERVE_WEB)
REPORT_WEB := $(wildcard src/report/web/*)
$(BUILD)/obj/src/report/assets.o $(ASAN_DIR)/obj/src/report/assets.o: $(REPORT_WEB)

$(BUILD)/obj/%.o: %.cpp
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS_ALL) -O2 -g -c $< -o $@

$(ASAN_DIR)/obj/%.o: %.cpp
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS_ALL) $(ASAN_FLAGS) -c $< -o $@

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: %.cu
	@mkdir -p $(@D)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(BUILD)/tests/%: tests/%.c $(LIBA)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests -o $@ $< $(LIBA) $(LDLIBS) $(CUDA_LIBS)

$(BUILD)/tools/%: tests/tools/%.c $(LIBA)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests -o $@ $< $(LIBA) $(LDLIBS) $(CUDA_LIBS)

# bench/decode measures libspng beside libpng when it is installed (scripts/deps.sh).
SPNG_LIBS := $(shell pkg-config --libs spng 2>/dev/null)
$(BUILD)/bench/decode: ALL_CFLAGS += $(if $(SPNG_LIBS),-DFX_HAVE_SPNG)
$(BUILD)/bench/decode: LDLIBS += $(SPNG_LIBS)

$(BUILD)/bench/%: bench/%.c $(LIBA)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LIBA) $(LDLIBS) $(CUDA_LIBS)

$(ASAN_DIR)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(ASAN_FLAGS) -c $< -o $@

$(ASAN_DIR)/libfxscreen.a: $(ASAN_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

# The CLI under the sanitizers: test_serve.py runs its API tests against it too.
$(ASAN_BIN): $(CLI_SRC:%.c=$(ASAN_DIR)/obj/%.o) $(ASAN_DIR)/libfxscreen.a
	$(CC) $(BASE_CFLAGS) $(ASAN_FLAGS) -o $@ $^ $(PKG_LIBS) -fopenmp

$(ASAN_DIR)/tests/%: tests/%.c $(ASAN_DIR)/libfxscreen.a
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(ASAN_FLAGS) -Itests -o $@ $< $(ASAN_DIR)/libfxscreen.a $(PKG_LIBS) -fopenmp

# fuzz_onnx also needs the importer, the graph, the ops and protobuf-c (and,
# as src/model holds the Keras importer too, HDF5, cJSON and libarchive).
KERAS_LIBS := $(shell pkg-config --libs hdf5 libcjson 2>/dev/null) -larchive
FUZZ_ONNX_SRC := $(BUILD)/gen/onnx.pb-c.c $(wildcard src/model/*.c src/ops/*.c src/backend/*.c) src/core/device.c \
                 src/core/jsonutil.c src/out/h5util.c
$(BUILD)/fuzz/fuzz_onnx: $(FUZZ_ONNX_SRC)
$(BUILD)/fuzz/fuzz_onnx: FUZZ_LIBSRC += $(FUZZ_ONNX_SRC)
$(BUILD)/fuzz/fuzz_onnx: FUZZ_LIBS := -lprotobuf-c -lopenblas $(KERAS_LIBS)
# fuzz_keras: the Keras config reader over the same sources (zero weights).
$(BUILD)/fuzz/fuzz_keras: $(FUZZ_ONNX_SRC)
$(BUILD)/fuzz/fuzz_keras: FUZZ_LIBSRC += $(FUZZ_ONNX_SRC)
$(BUILD)/fuzz/fuzz_keras: FUZZ_LIBS := -lprotobuf-c -lopenblas $(KERAS_LIBS)

# fuzz_dicom also needs the GDCM wrapper, built by clang++ with the same sanitizers.
$(BUILD)/fuzz/dicom_gdcm.o: src/io/dicom_gdcm.cpp
	@mkdir -p $(@D)
	$(CLANG)++ -std=c++17 -Iinclude -Isrc -I$(GDCM_INC) -g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize=vptr -c $< -o $@
$(BUILD)/fuzz/fuzz_dicom: $(BUILD)/fuzz/dicom_gdcm.o
$(BUILD)/fuzz/fuzz_dicom: FUZZ_DEFS :=
$(BUILD)/fuzz/fuzz_dicom: FUZZ_LIBS := $(BUILD)/fuzz/dicom_gdcm.o $(GDCM_LIBS) -lz

# fuzz_archive: the archive reader (and the loaders it feeds) over libarchive.
$(BUILD)/fuzz/fuzz_archive: src/pool/archive.c src/core/fsutil.c
$(BUILD)/fuzz/fuzz_archive: FUZZ_LIBSRC += src/pool/archive.c src/core/fsutil.c
$(BUILD)/fuzz/fuzz_archive: FUZZ_LIBS := -larchive

# fuzz_v2: serve's Open Inference Protocol request parser (no network).
$(BUILD)/fuzz/fuzz_v2: src/serve/v2_request.c src/serve/base64.c src/core/jsonutil.c
$(BUILD)/fuzz/fuzz_v2: FUZZ_LIBSRC := src/serve/v2_request.c src/serve/base64.c src/core/jsonutil.c src/core/status.c
$(BUILD)/fuzz/fuzz_v2: FUZZ_LIBS := -lcjson -lcrypto
# fuzz_runjson: run.json (resume, merge) and the --shard spec.
RUNJSON_SRC := src/job/run_json.c src/job/shard.c src/cam/methods.c src/core/device.c src/core/status.c
$(BUILD)/fuzz/fuzz_runjson: $(RUNJSON_SRC)
$(BUILD)/fuzz/fuzz_runjson: FUZZ_LIBSRC := $(RUNJSON_SRC)
$(BUILD)/fuzz/fuzz_runjson: FUZZ_LIBS := -lcjson -lm
$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_LIBSRC)
	@mkdir -p $(@D)
	$(CLANG) -std=c11 -D_GNU_SOURCE $(FUZZ_DEFS) -Iinclude -Isrc -I$(BUILD)/gen $(PKG_CFLAGS) -g -O1 \
	  -fsanitize=fuzzer,address,undefined -o $@ $< $(FUZZ_LIBSRC) $(FUZZ_LIBS) $(shell pkg-config --libs libpng libtiff-4 libjpeg libopenjp2 libdeflate) -lm

tools: $(TOOLS)

# test and demo pull in deps first, then re-enter make so pkg-config sees them.
test: deps
	@$(MAKE) --no-print-directory test-run

test-run: all $(TESTS) $(TOOLS) $(ASAN_TESTS) $(ASAN_BIN) $(if $(HAVE_LIBFUZZER),$(FUZZ_BINS))
	@bash tests/run.sh $(BUILD) $(ASAN_DIR)

test-gpu: all $(TESTS) $(BUILD)/bench/infer_fx
	@bash scripts/test-gpu.sh $(BUILD)

demo: deps
	@$(MAKE) --no-print-directory demo-run

demo-run: all
	@bash scripts/demo.sh $(BUILD)

static:
	$(MAKE) STATIC=1 BUILD=build-static all

# What a GPU machine without Debian's libraries needs, small enough to carry.
GPU_BINS := fxscreen tests/test_engine_gpu tests/test_prep_gpu bench/infer_fx
gpu-bundle:
	$(MAKE) STATIC=1 BUILD=build-static $(addprefix build-static/,$(GPU_BINS))
	rm -rf build-gpu && mkdir -p build-gpu/tests build-gpu/bench build-gpu/lib
	for b in $(GPU_BINS); do strip -o build-gpu/$$b build-static/$$b; done
	cp -L $(shell pkg-config --variable=libdir libcjson)/libcjson.so.1 build-gpu/lib/
	tar cJf build-gpu.tar.xz build-gpu
	@ls -l build-gpu.tar.xz

deps:
	@bash scripts/deps.sh
	@bash scripts/venv.sh $(BUILD)
	@bash scripts/venv.sh $(BUILD) keras
	@bash scripts/venv.sh $(BUILD) dicom
	@bash scripts/venv.sh $(BUILD) gradcam

bench: all $(BENCHES)
	@bash bench/decode.sh $(BUILD)

bench-infer: all $(BUILD)/bench/infer_fx
	@bash bench/infer.sh $(BUILD) $(BENCH_ARGS)

bench-run: all
	@bash bench/run.sh $(BUILD)

bench-serve: all
	@bash bench/serve.sh $(BUILD)

check-long: all $(FUZZ_BINS)
	@bash scripts/check-long.sh $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h' '*.cu')

clean:
	rm -rf $(BUILD) build-static build-gpu build-gpu.tar.xz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
