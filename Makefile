# The two commands the README gives: `make napari` (main job) and `make test` (test suite).
# Both install everything they need into .venv on first use (scripts/setup_env.sh).
PY := .venv/bin/python
XVFB := xvfb-run -a -s "-screen 0 1280x1024x24"

.PHONY: napari test setup lint bench train clean

.venv/.installed: pyproject.toml scripts/setup_env.sh
	bash scripts/setup_env.sh testing
	touch $@

setup: .venv/.installed

napari: .venv/.installed  ## napari with the plugin docked and a sample smear loaded
	$(PY) scripts/launch_napari.py

test: .venv/.installed  ## the whole suite under a virtual X server (GUI tests need real OpenGL)
	$(XVFB) $(PY) -m pytest -q $(PYTEST_ARGS)

lint: .venv/.installed
	.venv/bin/ruff check napari_bloodseg tests scripts benchmarks

bench:  ## inference benchmark tables (benchmarks/README.md); installs the bench extra (monai, psutil, zarr, dask)
	bash scripts/setup_env.sh bench
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)

clean:
	rm -rf .venv build dist *.egg-info .pytest_cache
