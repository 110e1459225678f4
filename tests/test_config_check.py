"""A composed config is checked before any model loads: one error line per bad value, naming the key,
the value and what is allowed, all taken from the code the config sets up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import run  # noqa: F401  (registers the resolvers)
from benchmarks.methods import editor_class
from benchmarks.run.config_check import check_run_config

CONF = Path(__file__).resolve().parents[1] / "conf"
METHODS = sorted(p.stem for p in (CONF / "method").glob("*.yaml"))
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
TINY_MODELS = ("tiny", "tiny_sdxl", "tiny_sd3", "tiny_flux", "tiny_kontext", "tiny_qwen_image_edit")


def _family(model: str) -> str:
    return OmegaConf.load(CONF / "model" / f"{model}.yaml").family


def _check(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["model=tiny", "dataset=synthetic", *overrides], return_hydra_config=True)
    return check_run_config(cfg)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_config_passes_as_shipped(method: str) -> None:
    model = next(m for m in TINY_MODELS if _family(m) in editor_class(method).capabilities.families)
    assert _check(f"model={model}", f"method={method}").errors == []


def _method_on(model: str) -> str:
    """InstDiffEdit where it runs on the model's family, else the first method that does."""
    family = _family(model)
    if family in editor_class("instdiffedit").capabilities.families:
        return "instdiffedit"
    return next(m for m in METHODS if family in editor_class(m).capabilities.families)


@pytest.mark.parametrize("model", MODELS)
def test_every_model_config_fits_its_loaders_signature(model: str, monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # hub ids are looked up only when the hub is off
    assert _check(f"model={model}", f"method={_method_on(model)}").errors == []


@pytest.mark.parametrize(
    "overrides,line",
    [
        (["method.threshold=1.5"], "method.threshold=1.5: threshold must be in [0, 1), got 1.5."),
        (["method.num_noises=0"], "method.num_noises=0: num_noises must be at least 1, got 0."),
        (["method.th1=0.5"], "method.th1=0.5: Need 0 <= th2 <= th1 <= 1, got th1=0.5, th2=0.6."),
        (["method.blend_with=x"], "method.blend_with=x: should be 't' or 't-1'"),
        (["method.num_noises=three"], "method.num_noises=three: should be a valid integer (InstDiffEdit's num_noises is int)."),
        (["method.scheduler=Euler"], "method.scheduler=Euler: "),
        (["+method.thresh=0.3"], "method.thresh=0.3: InstDiffEdit has no setting 'thresh'; did you mean method.threshold?"),
        (["method=diffedit_ddim", "method.encode_ratio=2"], "method.encode_ratio=2: encode_ratio must be in (0, 1], got 2"),
        (["method=ledits_pp", "method.mask_from=all"], "method.mask_from=all: should be 'last' or 'majority'"),
        (["batch_size=0"], "batch_size=0: batch_size must be at least 1, got 0."),
        (["shard.count=2", "shard.index=2"], "shard.index=2: shard.index must be in [0, shard.count), got index=2, count=2."),
        (["save_images=maybe"], "save_images=maybe: should be a valid boolean."),
        (["device=gpu"], "device=gpu: "),
        (["model=sd14", "model.dtype=half"], "model.dtype=half: Unknown dtype 'half'; expected one of: auto, float16, bfloat16, float32."),
        (["metrics=paper", "metrics.lpips.size=big"], "metrics.lpips.size=big: should be a valid integer"),
        (["dataset.n=0"], "dataset.n=0: n must be at least 1, got 0."),
        (["dataset.size=8"], "dataset.size=8: size must be at least 16, got 8."),
        (["method.strength=2"], "method.strength=2: strength must be in (0, 1], got 2."),
        (["method.num_inference_steps=0"], "method.num_inference_steps=0: num_inference_steps must be at least 1, got 0."),
        (["method.th2=-0.1"], "method.th2=-0.1: th2 must be in [0, 1], got -0.1."),
        (["method.mask_size=0"], "method.mask_size=0: mask_size must be at least 1, got 0."),
        (["method=sdedit", "method.strength=0"], "method.strength=0: strength must be in (0, 1], got 0."),
        (["method=diffedit", "method.unet_batch_size=1"], "method.unet_batch_size=1: unet_batch_size must be at least 2, got 1."),
        (["method=ledits_pp", "method.edit_threshold=1.5"], "method.edit_threshold=1.5: edit_threshold must be in [0, 1], got 1.5."),
        (["dataset=toy_shapes", "dataset.background_share=2"], "dataset.background_share=2: background_share must be in [0, 1], got 2."),
        (["model=sdxl", "model.resolution=0"], "model.resolution=0: resolution must be at least 1, got 0."),
        (["+batchsize=1"], "batchsize=1: the harness has no setting 'batchsize'; did you mean batch_size? its settings: seed, device,"),
        (["+shard.idx=1"], "shard.idx=1: the harness has no setting 'shard.idx'; did you mean shard.index?"),
        (
            ["method=oracle_inpaint", "dataset=imagen", "dataset.list_path=/no/such/list.txt"],
            "The list file /no/such/list.txt given by dataset.list_path does not exist.",
        ),
    ],
)
def test_a_bad_value_is_one_line_naming_the_key_the_value_and_what_is_allowed(overrides: list[str], line: str) -> None:
    errors = _check(*overrides).errors
    assert len(errors) == 1 and errors[0].startswith(line), errors


def test_several_bad_values_are_several_lines_each_naming_its_own_key() -> None:
    errors = _check("method.threshold=1.5", "method.num_noises=0", "method.strength=x", "batch_size=0").errors
    assert sorted(e.split(":")[0] for e in errors) == ["batch_size=0", "method.num_noises=0", "method.strength=x", "method.threshold=1.5"]


def test_a_method_that_needs_masks_on_a_split_without_them_is_refused(tmp_path: Path) -> None:
    (tmp_path / "list.txt").write_text("1 <> A photo of a cat. <> cat <> a dog\n")
    errors = _check("method=oracle_inpaint", "dataset=imagen", f"dataset.list_path={tmp_path / 'list.txt'}").errors
    assert errors == ["method=oracle_inpaint needs ground-truth masks and dataset=imagen has none."]


def test_a_local_model_folder_that_does_not_exist_is_named_before_anything_loads(tmp_path: Path) -> None:
    errors = _check("model=sd14", f"model.base={tmp_path / 'sd'}").errors
    assert len(errors) == 1 and str(tmp_path / "sd") in errors[0] and "model.base" in errors[0]


def test_an_uncached_hub_model_with_the_hub_off_is_named_before_anything_loads(tmp_path: Path, monkeypatch) -> None:
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    errors = _check("model=sd14").errors
    assert [e.split(" (")[0] for e in errors] == [
        "Could not load 'CompVis/stable-diffusion-v1-4'",
        "Could not load 'stable-diffusion-v1-5/stable-diffusion-inpainting'",
    ]


PRETRAINED_MODELS = [m for m in MODELS if "base" in OmegaConf.load(CONF / "model" / f"{m}.yaml")]


def _hub_ids(model: str) -> list[str]:
    node = OmegaConf.load(CONF / "model" / f"{model}.yaml")
    return [node[key] for key in ("base", "inpaint") if node.get(key) is not None]


@pytest.mark.parametrize("model", PRETRAINED_MODELS)
def test_every_downloaded_model_of_every_family_is_looked_up_with_the_hub_off(model: str, tmp_path: Path, monkeypatch) -> None:
    import huggingface_hub
    from hub_cache import hub_snapshot

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    errors = _check(f"model={model}", f"method={_method_on(model)}").errors
    assert errors == [error for error in errors if error.startswith("Could not load '")]
    assert [e.split("'")[1] for e in errors] == _hub_ids(model)
    assert all("HF_HUB_OFFLINE is set" in e for e in errors)

    files = tmp_path / "files"
    files.mkdir()
    (files / "model_index.json").write_text("{}")
    for repo_id in _hub_ids(model):
        hub_snapshot(tmp_path, repo_id, files)
    assert _check(f"model={model}", f"method={_method_on(model)}").errors == []


@pytest.mark.slow
@pytest.mark.parametrize("model", ["sdxl", "sd35_medium", "flux_dev"])
def test_run_py_with_an_uncached_family_model_and_the_hub_off_stops_before_anything_runs(model: str, tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    result = subprocess.run(
        [sys.executable, "run.py", f"model={model}", "logger=none", f"paths.output_root={tmp_path / 'outputs'}"],
        cwd=CONF.parent,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert [line.split("'")[1] for line in result.stderr.splitlines()] == _hub_ids(model), result.stderr[-3000:]
    assert all(line.startswith("error: Could not load '") for line in result.stderr.splitlines())
    assert not (tmp_path / "outputs").exists()


def test_the_toy_model_on_a_split_it_was_not_made_for_is_one_warning() -> None:
    check = _check("model=toy")
    assert check.errors == [] and len(check.warnings) == 1
    assert "model=toy" in check.warnings[0] and "synthetic" in check.warnings[0]
    assert _check("model=toy", "dataset=toy_shapes").warnings == []


FAMILY_MODELS = ("tiny_sdxl", "tiny_sd3", "tiny_flux")


def _families(method: str) -> frozenset[str]:
    """The families the method's config runs on: its class's, joined with its parts' (method=compose's default mask and editor)."""
    from benchmarks.methods import method_config
    from benchmarks.run.config_check import _capabilities

    return _capabilities(method_config(method)).families


@pytest.mark.parametrize(("model", "method"), [(model, method) for model in FAMILY_MODELS for method in METHODS if _family(model) in _families(method)])
def test_every_method_passes_on_the_tiny_model_of_each_family_it_runs_on(model: str, method: str) -> None:
    assert _check(f"model={model}", f"method={method}").errors == []


@pytest.mark.parametrize("model", FAMILY_MODELS)
@pytest.mark.parametrize("method", ["diffedit_ddim", "ledits_pp"])
def test_an_sd_only_method_on_another_family_is_one_line(model: str, method: str) -> None:
    errors = _check(f"model={model}", f"method={method}").errors
    assert len(errors) == 1 and errors[0].startswith(f"method={method} with model={model}: ")
    assert "runs on SD 1.x/2.x models only, not on" in errors[0]


@pytest.mark.parametrize(
    ("model", "method", "message"),
    [
        ("sd14", "kontext", "FluxKontext runs on FLUX.1 Kontext models only, not on SD 1.x/2.x."),
        ("tiny_flux", "qwen_image_edit", "QwenImageEdit runs on Qwen-Image-Edit models only, not on FLUX.1."),
        ("kontext_dev", "instdiffedit", "InstDiffEdit runs on SD 1.x/2.x and SDXL and SD 3.x and FLUX.1 models only, not on FLUX.1 Kontext."),
        ("tiny_qwen_image_edit", "oracle_inpaint", "OracleInpaint runs on SD 1.x/2.x and SDXL and SD 3.x and FLUX.1 models only, not on Qwen-Image-Edit."),
    ],
)
def test_an_instruction_editor_and_a_mask_method_on_each_others_models_are_one_line(model: str, method: str, message: str) -> None:
    assert _check(f"model={model}", f"method={method}").errors == [f"method={method} with model={model}: {message}"]


@pytest.mark.parametrize("model", ["tiny", "tiny_sdxl"])
def test_flowedit_on_a_diffusion_model_is_one_line(model: str) -> None:
    assert _check(f"model={model}", "method=flowedit").errors == [
        f"method=flowedit with model={model}: FlowEdit runs on SD 3.x and FLUX.1 models only, not on {'SD 1.x/2.x' if model == 'tiny' else 'SDXL'}."
    ]


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (["method.n_max=40"], "method.n_max=40: FlowEdit needs 0 <= n_min <= n_max <= num_inference_steps, got n_min=0, n_max=40, num_inference_steps=28."),
        (
            ["method.n_min=30", "method.n_max=20"],
            "method.n_max=20, method.n_min=30: FlowEdit needs 0 <= n_min <= n_max <= num_inference_steps, got n_min=30, n_max=20, num_inference_steps=28.",
        ),
        (["method.n_avg=0"], "method.n_avg=0: n_avg must be at least 1, got 0."),
    ],
)
def test_a_flowedit_range_against_the_familys_published_steps_is_one_line(overrides: list[str], line: str) -> None:
    """FLUX.1's published 28 steps bound n_max before the model loads."""
    assert _check("model=tiny_flux", "method=flowedit", *overrides).errors == [line]


def test_a_scheduler_of_the_other_kind_is_one_line() -> None:
    """The method is built on a stand-in of the family's pipeline, so the family's backbone checks the scheduler."""
    assert _check("model=tiny_flux", "method.scheduler=LMSDiscreteScheduler").errors == [
        "method.scheduler=LMSDiscreteScheduler: scheduler='LMSDiscreteScheduler' cannot run flow matching; this model needs FlowMatchEulerDiscreteScheduler."
    ]
    assert (
        _check("model=tiny_sdxl", "method=sdedit", "method.scheduler=FlowMatchEulerDiscreteScheduler")
        .errors[0]
        .startswith("method.scheduler=FlowMatchEulerDiscreteScheduler: scheduler='FlowMatchEulerDiscreteScheduler' is a flow-matching scheduler")
    )


def test_a_config_check_that_breaks_stops_the_run_instead_of_letting_it_go_unchecked(monkeypatch, capsys) -> None:
    # Hydra turns an exception in a callback into a warning; a missing dependency of the check must not.
    from benchmarks.run import callbacks, config_check

    def broken(config):
        raise ModuleNotFoundError("No module named 'pydantic'")

    monkeypatch.setattr(config_check, "check_run_config", broken)
    with pytest.raises(SystemExit) as stop:
        callbacks.ValidateConfig().on_run_start(OmegaConf.create({}))
    assert stop.value.code == 2
    assert capsys.readouterr().err == ("error: the config check itself failed (ModuleNotFoundError: No module named 'pydantic'); fix that and run again.\n")
