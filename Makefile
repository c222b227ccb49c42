VENV ?= .venv
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# redis-server for the tests' own Redis; ruby-sidekiq (with rack and webrick for
# rackup) is the compatibility peer the interop tests drive; nginx-light runs the tested
# reverse-proxy example (deploy/nginx).
APT_PACKAGES := redis-server ruby-sidekiq ruby-rack ruby-webrick nginx-light

.PHONY: test lint install system-deps clean run

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

# Everything on this machine (Redis, a moto EC2, API, workers, dashboard); Ctrl-C stops it.
# `make run ARGS="--port 8080"` passes flags to `pudding dev`.
run: install
	bin/pudding dev $(ARGS)

lint: install
	$(VENV)/bin/ruff check .

install: system-deps $(VENV)/.installed

system-deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(VENV)/.installed: setup.cfg setup.py
	[ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
