# The same commands a fresh machine, CI (.ci/run) and the README use.
PYTHON ?= python

SCALING_GPUS ?= 1 2 4

.PHONY: install lint test test-fast run-tiny report tables figures readme-figures scaling bench bench-backbones bench-check bench-tiny clean

# The browser test of the results browser drives Debian's chromium; without it that test is skipped.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo -n)

install:  ## torch first (this pins the wheel CI tests with), then the project and its test tools (chromium where apt can install it)
	$(PYTHON) -m pip install torch==2.14.1 torchvision==0.29.1
	$(PYTHON) -m pip install -e ".[dev]"
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && $(SUDO) sh -c 'apt-get update -qq && apt-get install -y -qq chromium'; } \
	  || echo "note: chromium is not installed (apt-get install chromium); the results browser's browser test will be skipped"

lint:  ## ruff: the lint rules and the formatting (pyproject.toml's [tool.ruff])
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

test: lint  ## the lint, then the whole suite, slow end-to-end runs included
	$(PYTHON) -m pytest -q

test-fast:  ## everything but the end-to-end runs
	$(PYTHON) -m pytest -q -m "not slow"

run-tiny:  ## the runner on the tiny random model and the synthetic split, offline
	$(PYTHON) run.py model=tiny dataset=synthetic dataset.n=2

# Tables and figures from result folders (a run folder, a sweep, or all of outputs/).
RESULTS ?= outputs
REPORT ?= report

report:  ## every table and figure of $(RESULTS) into $(REPORT)/ (tables: .md .tex .csv; figures: .png .pdf), the results browser in $(REPORT)/site/
	$(PYTHON) -m benchmarks.report $(RESULTS) --out $(REPORT) --html $(REPORT)/site

tables:  ## only the tables
	$(PYTHON) -m benchmarks.report $(RESULTS) --out $(REPORT) --only tables

figures:  ## only the figures
	$(PYTHON) -m benchmarks.report $(RESULTS) --out $(REPORT) --only figures

# The README's figures: a phi sweep and three methods on the toy split with the trained toy
# model, then the report; one of each figure kind is copied into docs/figures/.
# README_MODEL=tiny draws them with the random plumbing model instead.
README_MODEL ?= toy
README_RUNS ?= outputs/readme
README_ITEMS ?= 4

readme-figures:  ## regenerate docs/figures/*.png from real runs (README_MODEL=tiny|toy)
	$(PYTHON) run.py -m experiment=ablation_phi model=$(README_MODEL) dataset=toy_shapes dataset.n=$(README_ITEMS) logger=none paths.output_root=$(README_RUNS)
	$(PYTHON) run.py -m method=instdiffedit,diffedit,sdedit model=$(README_MODEL) dataset=toy_shapes dataset.n=$(README_ITEMS) logger=none paths.output_root=$(README_RUNS)
	$(PYTHON) -m benchmarks.report $(README_RUNS)/$(README_MODEL) --out $(README_RUNS)/report --n-items 3 --html $(README_RUNS)/report/site
	mkdir -p docs/figures
	cp $(README_RUNS)/report/figures/qualitative_$(README_MODEL)_toy_shapes.png docs/figures/qualitative.png
	cp $(README_RUNS)/report/figures/ablation_threshold.png docs/figures/ablation_threshold.png
	cp $(README_RUNS)/report/figures/speed_vs_iou_$(README_MODEL)_toy_shapes.png docs/figures/speed_vs_iou.png
	cp $(README_RUNS)/report/figures/mask_evolution_$(README_MODEL)_toy_shapes.png docs/figures/mask_evolution.png
	cp $(README_RUNS)/report/tables/toy_shapes.md docs/figures/toy_shapes.md
	$(PYTHON) -m benchmarks.report.site.chromium "$(README_RUNS)/report/site/items-$(README_MODEL)-toy_shapes.html#sort=instdiffedit-threshold-0.2:mask_iou&hide=instdiffedit-threshold-0.1,instdiffedit-threshold-0.3" docs/figures/results-browser.png
	echo "$(README_MODEL)" > docs/figures/MODEL

scaling:  ## items/s on 1 vs 2 vs 4 GPUs (SCALING_GPUS; one shard each, hydra/launcher=local_gpus), SD 1.4's cost; writes docs/figures/scaling.{json,png} and the paragraph of docs/scaling.md
	$(PYTHON) -m benchmarks.perf.scaling --model sd14_random --dataset synthetic --override dataset.size=512 --n 48 --gpus $(SCALING_GPUS) --doc docs/scaling.md

bench:  ## speed at paper settings on this GPU (SD 1.4 architecture), the committed table's command (under 10 minutes on an H200); writes docs/speed/ and the table of docs/speed.md
	$(PYTHON) -m benchmarks.perf.speed --out docs/speed --doc docs/speed.md --methods instdiffedit,diffedit,sdedit,instdiffedit@8 --repeats 2 --diffedit-repeats 1 --floor-repeats 1 --budget-s 420 --warm-cache-timeout-s 90

bench-backbones:  ## the same on SDXL, SD 3.5 Medium, FLUX.1 [dev] and the instruction editors at full size (each under 8 minutes on an H100); writes docs/speed/<arch>/ and the backbone table of docs/speed.md
	$(PYTHON) -m benchmarks.perf.speed --arch sdxl --modes graphs --short-warmup --repeats 2 --diffedit-repeats 1 --floor-repeats 1 --budget-s 300 --out docs/speed/sdxl --doc docs/speed.md
	$(PYTHON) -m benchmarks.perf.speed --arch sd35_medium --modes graphs --short-warmup --repeats 2 --diffedit-repeats 1 --floor-repeats 1 --budget-s 330 --out docs/speed/sd35_medium --doc docs/speed.md
	$(PYTHON) -m benchmarks.perf.speed --arch flux_dev --modes graphs --short-warmup --repeats 1 --floor-repeats 1 --budget-s 330 --out docs/speed/flux_dev --doc docs/speed.md
	$(PYTHON) -m benchmarks.perf.speed --arch kontext_dev --modes eager --short-warmup --repeats 1 --floor-repeats 1 --budget-s 120 --out docs/speed/kontext_dev --doc docs/speed.md
	$(PYTHON) -m benchmarks.perf.speed --arch qwen_image_edit --modes eager --short-warmup --repeats 1 --floor-repeats 1 --budget-s 240 --out docs/speed/qwen_image_edit --doc docs/speed.md

bench-check:  ## on a GPU, in about a minute: CUDA graphs give eager's masks and images (exit 1 if not)
	$(PYTHON) -m benchmarks.perf.speed --arch sd14 --quick --modes eager,graphs --check --out outputs/speed-check

bench-tiny:  ## the same benchmark's plumbing on the tiny model, on the CPU, in a minute
	$(PYTHON) -m benchmarks.perf.speed --arch tiny --quick --device cpu --modes eager,eager+cl --repeats 1 --out outputs/speed-tiny

clean:
	rm -rf outputs multirun wandb .pytest_cache report
