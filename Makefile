# pls: `make demo` runs the main job, `make test` runs the tests. Both set up .venv first (idempotent).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_SYS ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
STAMPS := $(VENV)/.stamps
BUILD := build
export AMENT_PREFIX_PATH := $(abspath $(VENV))
export OMP_NUM_THREADS ?= 1
# pls_core's tests also run under Python 3.12 where one is found (pyenv's shim included), in .venv312:
# requirements/base.txt less the ROS wheels and colcon, which exist for 3.11 only. There torch 2.13.0 is
# PyPI's CUDA build (no 3.12 CPU wheel on local disk): about 1.6 GB of downloads and 5.7 GB on disk, once,
# with a peak near 7.7 GB while it installs. Where the disk has less than TEST312_MIN_FREE_GB free and no
# finished .venv312 exists yet, the 3.12 run is left out with a line saying so rather than failing
# half-installed.
PYTHON312 ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 12); print(sys.executable)' 2>/dev/null && break; done)
VENV312 := .venv312
TEST312_MIN_FREE_GB ?= 8

.PHONY: help setup setup312 demo test test312 lint clean-setup

help:
	@echo "make demo   - set up, then run PLS end to end in the MuJoCo sim through the ROS 2 node graph"
	@echo "make test   - set up, then run the test suite (DDS confined to this machine)"
	@echo "make setup  - only create/refresh .venv: pinned deps, safety-gymnasium, pls_interfaces messages"
	@echo "make lint   - ruff"

setup: $(STAMPS)/msgs $(STAMPS)/pls

$(STAMPS)/venv:
	$(PYTHON_SYS) -m venv $(VENV)
	mkdir -p $(STAMPS) && touch $@

# torch is pinned in requirements/base.txt to the CPU build on local disk; never let pip pick another.
$(STAMPS)/deps: $(STAMPS)/venv requirements/base.txt
	$(PIP) install -r requirements/base.txt
	# safety-gymnasium 1.0.0 pins pygame 2.1.0 (no cp311 wheel) and mujoco 2.3.3: install without its pins;
	# pls_core.compat.safety_gymnasium makes it run on Python 3.11 / mujoco 3 / numpy 2.
	$(PIP) install --no-deps -r requirements/no-deps.txt
	$(PY) scripts/fix_ros_cmake_exports.py
	touch $@

$(STAMPS)/msgs: $(STAMPS)/deps $(wildcard msg/*.msg) pls_interfaces/CMakeLists.txt pls_interfaces/package.xml
	rm -rf $(BUILD)/pls_interfaces && mkdir -p $(BUILD)
	cmake -S pls_interfaces -B $(BUILD)/pls_interfaces -DCMAKE_PREFIX_PATH=$(abspath $(VENV)) \
	  -DCMAKE_INSTALL_PREFIX=$(abspath $(VENV)) -DPython3_EXECUTABLE=$(abspath $(PY)) -DBUILD_TESTING=OFF \
	  > $(BUILD)/pls_interfaces.configure.log || { cat $(BUILD)/pls_interfaces.configure.log; exit 1; }
	cmake --build $(BUILD)/pls_interfaces -j2 > $(BUILD)/pls_interfaces.build.log || { tail -50 $(BUILD)/pls_interfaces.build.log; exit 1; }
	cmake --install $(BUILD)/pls_interfaces > /dev/null
	$(PY) -c "from pls_interfaces.msg import TargetReturn, EpisodeResult, SupervisorStatus"
	touch $@

$(STAMPS)/pls: $(STAMPS)/deps setup.py setup.cfg
	$(PIP) install --no-deps --no-build-isolation -e .
	touch $@

# Two pytest-xdist workers, whole files each (module fixtures such as the colcon build run once): most
# tests wait on child processes and DDS, so two workers on two cores finish sooner (test/conftest.py
# gives each worker its own ROS domain ids).
test: setup
	scripts/netns-run $(PY) -m pytest test -q -p no:cacheprovider -n 2 --dist loadfile
	$(MAKE) --no-print-directory test312

# PLS_TESTS=core: test/conftest.py leaves out the test files that need ROS (rclpy, pls_ros, messages).
test312:
ifeq ($(PYTHON312),)
	@echo "pls_core's tests under Python 3.12: skipped, no python3.12 on this machine (PYTHON312=... to name one)"
else
	@free=$$(df -P -k . | awk 'NR == 2 {print int($$4 / 1048576)}'); \
	if [ ! -f $(VENV312)/.stamps/deps ] && [ "$$free" -lt $(TEST312_MIN_FREE_GB) ]; then \
		echo "pls_core's tests under Python 3.12: skipped, $$free GB free on this disk and its venv (PyPI's CUDA" \
			"torch) needs $(TEST312_MIN_FREE_GB) GB while it installs; free space, then run make test312"; \
	else \
		$(MAKE) --no-print-directory setup312 && \
		PLS_TESTS=core scripts/netns-run $(VENV312)/bin/python -m pytest test -q -p no:cacheprovider -n 2 \
			--dist loadfile; \
	fi
endif

setup312: $(VENV312)/.stamps/deps

$(VENV312)/.stamps/deps: requirements/base.txt requirements/no-deps.txt
	$(PYTHON312) -m venv $(VENV312)
	grep -v -E '^(ros-|catkin|colcon)' requirements/base.txt > $(VENV312)/requirements.txt
	$(VENV312)/bin/python -m pip --disable-pip-version-check -q --no-cache-dir install -r $(VENV312)/requirements.txt
	$(VENV312)/bin/python -m pip --disable-pip-version-check -q --no-cache-dir install --no-deps \
		-r requirements/no-deps.txt
	mkdir -p $(VENV312)/.stamps && touch $@

lint: setup
	$(VENV)/bin/ruff check .

demo: setup
	scripts/netns-run $(VENV)/bin/pls demo

clean-setup:
	rm -rf $(VENV) $(VENV312) $(BUILD)
