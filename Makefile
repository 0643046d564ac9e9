# Two commands: `make demo` and `make test`. Each sets up everything it needs on a
# machine that has only python3 (the venv, the project, and the Debian tools the
# tests drive for real: chromium, age, ffmpeg, and Go with golang.org/x/mod, whose
# signed-note code checks ours).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEBIAN_TOOLS := chromium:chromium age:age ffprobe:ffmpeg go:golang-go ip:iproute2
# Libraries with no command of their own: installed unless dpkg knows them.
DEBIAN_LIBS  := golang-golang-x-mod-dev
# The native load generator's build (pion WebRTC from Debian, GOPATH mode, no module
# downloads) and the ffmpeg that encodes its clip once; only `make loadgen` installs them.
LOADGEN_DEBIAN := golang-go golang-github-pion-webrtc.v3-dev golang-github-gorilla-websocket-dev ffmpeg
LOADGEN        := build/loadgen/loadgen
LOADGEN_GOPATH := build/loadgen/gopath

.PHONY: demo test lint typecheck unit heavy system-tools bench loadgen clean

# Quick suites first; then the heavy ones: Chromium walk-throughs, the attack run and a
# one-room call played by the native load generator (built by `make loadgen`).
HEAVY_TESTS := tests/e2e tests/test_attack.py tests/test_native_load.py tests/test_netns.py \
	tests/test_worker_kill.py \
	tests/test_remote_workers.py \
	tests/test_coturn.py \
	tests/test_media_relay.py \
	tests/test_nginx_proxy.py
# Debian packages only the heavy tests drive: coturn, the TURN relay tests/test_coturn.py
# runs with the configuration `nexus-interview turn-config` writes; nginx with its stream
# module and envsubst, for deploy/nginx.conf in tests/test_nginx_proxy.py.
# firefox-esr with its French language pack, and NSS's certutil (a test CA in its profile),
# for tests/e2e/test_firefox.py.
HEAVY_DEBIAN := coturn nginx libnginx-mod-stream gettext-base nftables \
	firefox-esr firefox-esr-l10n-fr libnss3-tools
# The Firefox tests' driver: puppeteer-core at the version tests/firefox/package-lock.json
# pins, run by node (Debian's nodejs when there is none); it drives the firefox-esr above
# over WebDriver BiDi and never downloads a browser.
FIREFOX_DRIVER := tests/firefox/node_modules/.installed-stamp

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

system-tools:
	@missing=""; for pair in $(DEBIAN_TOOLS); do \
	  cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	$(call install_missing,$(DEBIAN_LIBS))

# $(call debian_packages,PKGS): install those of PKGS dpkg does not know.
debian_packages = missing=""; $(call install_missing,$(1))
install_missing = for pkg in $(1); do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q 'ok installed' \
	    || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

demo: $(STAMP)
	$(BIN)/nexus-interview demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) system-tools
	$(BIN)/pytest $(addprefix --ignore=,$(HEAVY_TESTS))

$(FIREFOX_DRIVER): tests/firefox/package.json tests/firefox/package-lock.json
	@if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
	  $(call debian_packages,nodejs npm); \
	fi
	npm ci --prefix tests/firefox --no-audit --no-fund
	touch $@

heavy: $(STAMP) system-tools loadgen $(FIREFOX_DRIVER)
	@$(call debian_packages,$(HEAVY_DEBIAN))
	$(BIN)/pytest $(HEAVY_TESTS)

test: lint typecheck unit heavy

# Janus (the C SFU the capacity run compares with) is installed for `make bench` only.
bench: $(STAMP) system-tools loadgen
	@$(call debian_packages,janus)
	$(BIN)/pytest -p no:cacheprovider bench/test_janus_server.py
	$(BIN)/python bench/capacity.py
	$(BIN)/python bench/workers.py --workers 0 1 2
	$(BIN)/python bench/import_applications.py
	$(BIN)/python bench/operator_console.py
	$(BIN)/python bench/pairing.py
	$(BIN)/python bench/interviews.py --aiortc-buffer-rooms 12
	$(BIN)/python bench/browser_join.py
	$(BIN)/python bench/crypto.py
	$(BIN)/python bench/verify.py
	$(BIN)/python bench/sign_in_flood.py

# Debian ships pion's webrtc at github.com/pion/webrtc while its code imports itself as
# .../webrtc/v3, so a scratch GOPATH maps that path onto Debian's copy.
loadgen:
	@$(call debian_packages,$(LOADGEN_DEBIAN))
	rm -rf $(LOADGEN_GOPATH)/src/nexus
	mkdir -p $(LOADGEN_GOPATH)/src/nexus/loadgen $(LOADGEN_GOPATH)/src/github.com/pion/webrtc
	cp bench/loadgen/*.go $(LOADGEN_GOPATH)/src/nexus/loadgen/
	ln -sfn /usr/share/gocode/src/github.com/pion/webrtc $(LOADGEN_GOPATH)/src/github.com/pion/webrtc/v3
	cd $(LOADGEN_GOPATH) && GO111MODULE=off GOPATH=$(abspath $(LOADGEN_GOPATH)):/usr/share/gocode \
	  go build -o $(abspath $(LOADGEN)) nexus/loadgen

clean:
	rm -rf $(VENV) demo-data .pytest_cache .mypy_cache .ruff_cache
