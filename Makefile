# The same commands a fresh machine, CI (.ci/run) and the README use.
PYTHON ?= python

.PHONY: install test test-fast run-tiny scaling clean

install:  ## torch first (this pins the wheel CI tests with), then the project and its test tools
	$(PYTHON) -m pip install torch==2.14.1 torchvision==0.29.1
	$(PYTHON) -m pip install -e ".[dev]"

test:  ## the whole suite, slow end-to-end runs included
	$(PYTHON) -m pytest -q

test-fast:  ## everything but the end-to-end runs
	$(PYTHON) -m pytest -q -m "not slow"

run-tiny:  ## the runner on the tiny random model and the synthetic split, offline
	$(PYTHON) run.py model=tiny dataset=synthetic dataset.n=2

scaling:  ## items/s on 1 vs 2 GPUs (one shard each, hydra/launcher=local_gpus); writes docs/figures/scaling.{json,png}
	$(PYTHON) -m benchmarks.scaling --model tiny --dataset toy_shapes --n 64 --gpus 1 2

clean:
	rm -rf outputs multirun wandb .pytest_cache
