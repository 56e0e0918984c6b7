# Tributary: the README's two commands are `make doctor` (main job) and `make test`.
SWIFT ?= swift
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SYSTEM_PACKAGES := libopenblas-dev liblapacke-dev

.PHONY: deps build doctor test bench clean

# Installs the system libraries when missing (Debian/Ubuntu).
deps:
	@dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1 || { \
		echo "installing $(SYSTEM_PACKAGES)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(SYSTEM_PACKAGES); }

build: deps
	$(SWIFT) build -c release --product tributary-engine

# The main job, until the flywheel demo replaces it: what the compute core runs on, and how fast.
doctor: build
	.build/release/tributary-engine doctor

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test

# GEMM benchmarks beside raw cblas, in one run; see docs/PERFORMANCE.md.
bench: deps
	cd Benchmarks && $(SWIFT) package --allow-writing-to-package-directory benchmark --format markdown \
		| tee .benchmark-output.md
	python3 Benchmarks/summarize.py Benchmarks/.benchmark-output.md

clean:
	rm -rf .build Benchmarks/.build
