# Two entry points, both from a clean clone: `make demo` and `make test` (see README).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: setup system-deps demo test bench

setup: $(VENV)/.installed

# Everything (all extras and the test tools), at the exact versions of constraints.txt; a user who
# only runs a backend installs the lean core instead: pip install annotator (see README, Install).
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[all,test]'
	touch $@

# Debian packages the tests start for real: headless Chromium + CJK fonts (dashboard browser test),
# PostgreSQL (store tests on both engines) and Redis (the RQ job queue). Needs root to install.
SYSTEM_PACKAGES := chromium chromium-driver fonts-noto-cjk postgresql redis-server
system-deps:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null && fc-list 2>/dev/null | grep -qi 'noto.*cjk' \
		&& ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v redis-server >/dev/null; then \
		echo "chromium, chromedriver, CJK fonts, PostgreSQL and Redis present"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	else \
		echo "install $(SYSTEM_PACKAGES) (Debian package names) for the browser, PostgreSQL and Redis tests" >&2; \
	fi

demo: setup
	$(VENV)/bin/annotator demo

# pytest exits 5 when it collected no test: that must fail, not pass.
test: setup system-deps
	@$(PY) -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no test" >&2; exit 1; fi; exit $$rc

bench: setup
	$(PY) bench/model_quality.py --quick
