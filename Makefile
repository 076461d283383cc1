# Two commands for a fresh machine:  make demo  (the main job on the built-in song)  and  make test.
# Both create .venv and install what they need; make test also installs the Debian packages the tests
# use (ffmpeg, fluidsynth + a small GM soundfont, zam-plugins, faust + lv2-dev + g++ for the LV2 export
# and the compiled DSP kernels, which is why they come before the pip install,
# lv2file + sordi to check it in an independent host) when run as root with apt-get.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
DEBIAN_PACKAGES := ffmpeg fluidsynth timgm6mb-soundfont openttd-openmsx zam-plugins x42-plugins dragonfly-reverb-vst dpf-plugins-vst lilv-utils chromium faust lv2-dev g++ lv2file sordi

.PHONY: demo test test-fast bench lint install install-test system-deps clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(PY) pyproject.toml setup.py plugin_bridge/backends/dsp/_ckernels.c
	$(PIP) install -q -e '.[web]'
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PIP) install -q -e '.[test,web,dawdreamer]'
	$(PIP) install -q torch==2.13.0 'onnx>=1.16'
	touch $@

install: $(VENV)/.installed

install-test: system-deps $(VENV)/.installed-test

system-deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then echo "Debian packages present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian packages:$$missing"; \
	  (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null) \
	  || echo "WARNING: could not install$$missing; tests that need them will be skipped"; \
	else echo "NOTE: not root: Debian packages$$missing not installed; tests that need them will be skipped"; fi

demo: system-deps install
	$(VENV)/bin/plugin-bridge demo -o demo_output
	$(VENV)/bin/plugin-bridge mix demo_output/demo_song.wav -o demo_output/ai_mix --model all
	$(VENV)/bin/plugin-bridge mix demo_output/multitrack/stems -o demo_output/ai_stems_mix

test: install-test
	$(PY) -m pytest -q

test-fast: install-test
	$(PY) -m pytest -q -m "not slow"

bench: install-test
	$(PIP) install -q -e '.[bench]'
	$(PY) bench/bench_render.py
	$(PY) bench/bench_session.py
	$(PY) bench/bench_reference.py
	$(PY) bench/bench_web_preview.py

lint: install-test
	$(VENV)/bin/ruff check plugin_bridge tests bench
	$(VENV)/bin/ruff format --check plugin_bridge tests bench

clean:
	rm -rf $(VENV) demo_output .pytest_cache
