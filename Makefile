# Tributary: the README's two commands are `make demo` (main job) and `make test`.
SWIFT ?= swift
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SYSTEM_PACKAGES := libopenblas-dev liblapacke-dev

.PHONY: deps build demo doctor test bench fuzz clean

# Installs the system libraries when missing (Debian/Ubuntu).
deps:
	@dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1 || { \
		echo "installing $(SYSTEM_PACKAGES)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(SYSTEM_PACKAGES); }

build: deps
	$(SWIFT) build -c release --product tributary-engine

# The main job: the flywheel across real processes (a coordinator, two engines, the client CLI); see demo/run.sh.
demo: deps
	$(SWIFT) build -c release
	demo/run.sh

# What the compute core runs on, and how fast.
doctor: build
	.build/release/tributary-engine doctor

# SWIFTNIO_STRICT: work scheduled on a stopped event loop traps instead of printing an error.
test: deps
	$(SWIFT) build --build-tests
	SWIFTNIO_STRICT=1 $(SWIFT) test

# GEMM benchmarks beside raw cblas, in one run; see docs/PERFORMANCE.md.
bench: deps
	cd Benchmarks && $(SWIFT) package --allow-writing-to-package-directory benchmark --format markdown \
		| tee .benchmark-output.md
	python3 Benchmarks/summarize.py Benchmarks/.benchmark-output.md

# libFuzzer for FUZZ_SECONDS on each of the two targets (see Fuzz/README.md): the wire codec's frame and message
# decoders, then the engine's request handlers on a real server and store. New inputs go to Fuzz/.work/corpus and
# Fuzz/.work/corpus-requests, crashes to Fuzz/.work/crashes and Fuzz/.work/crashes-requests; the committed corpora
# and regressions are only read. -timeout: a handler that holds one input this long is reported as a hang.
# SWIFT_BACKTRACE: Swift's own crash backtracer reads other threads' stacks, which ASan reports as a stack underflow
# in place of the crash; libFuzzer's deadly-signal handler prints the stack instead.
FUZZ_SECONDS ?= 60
fuzz:
	cd Fuzz && $(SWIFT) build -c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld
	mkdir -p Fuzz/.work/corpus Fuzz/.work/crashes Fuzz/.work/corpus-requests Fuzz/.work/crashes-requests
	SWIFT_BACKTRACE=enable=no Fuzz/.build/release/fuzz-wire-decoder -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=Fuzz/.work/crashes/ \
		Fuzz/.work/corpus Fuzz/corpus Fuzz/regressions
	SWIFT_BACKTRACE=enable=no Fuzz/.build/release/fuzz-engine-requests -max_total_time=$(FUZZ_SECONDS) -timeout=120 \
		-artifact_prefix=Fuzz/.work/crashes-requests/ Fuzz/.work/corpus-requests Fuzz/corpus-requests Fuzz/regressions-requests

clean:
	rm -rf .build Benchmarks/.build
