"""Every (mask source, editor) pair on the tiny model of every family: the pairs that apply run and give
what any composition must (the input's size, the source's mask, the input kept outside it as the editor
promises), the others are refused in one line before any model loads, and the guide's table of which
editors run on which family says what the parts declare.

Which pairs apply is read from the parts' declared capabilities, as the config check reads them: the
families the mask source, the editor (and an editor's inner editor) all run on, and whether the editor
needs the family's inpainting twin. The toy split has ground-truth masks and the centred disc, so no
mask source is refused for want of its split's masks here.
"""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf

import run  # noqa: F401  (registers the config's resolvers)
from baselines.flowedit import FlowEditInMask
from benchmarks.run.config_check import _capabilities, check_run_config
from instdiffedit.backbones import FAMILY_NAMES
from instdiffedit.region_editors import InstructionInMask, LatentBlending, TwinInpainting
from instdiffedit.resizing import resize_mask
from instdiffedit.types import Capabilities

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
TINY_MODELS = [model for model in MODELS if model.startswith("tiny")]
MASKS = sorted(p.stem for p in (CONF / "mask").glob("*.yaml"))
EDITORS = sorted(p.stem for p in (CONF / "editor").glob("*.yaml"))

SHORT = {"num_inference_steps": 4, "n_max": 2, "inpaint_steps": 2, "num_noises": 2}
"""Settings that make any part short wherever it has them: two denoising steps (strength 0.5 of 4 steps for
the mask sources and SDEdit, FlowEdit's n_max 2 of 4, 2 inpainting steps) and two noises per mask."""

KEEPS_OUTSIDE = {TwinInpainting: None, LatentBlending: "latents", FlowEditInMask: "latents", InstructionInMask: "pixels"}
"""What each editor keeps outside the mask, as it documents it (``instdiffedit/region_editors.py``,
``baselines/flowedit.py``): the input's pixels exactly (an editor composited inside the mask), the input's
latents at the end of denoising (latent blending, FlowEdit restricted to the mask: their pixels are the
autoencoder's decoding of them), or nothing (the twin repaints the whole image from the masked one)."""


@functools.cache
def _config(model: str, mask: str, editor: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(
            config_name="config",
            overrides=[f"model={model}", "method=compose", f"mask={mask}", f"editor={editor}", "dataset=toy_shapes", "dataset.n=1"],
            return_hydra_config=True,
        )


@functools.cache
def _pair_capabilities(mask: str, editor: str) -> Capabilities:
    """The composed method's capabilities as the config check reads them (its parts' joined; the same on every model)."""
    return _capabilities(_config("tiny", mask, editor).method)


def _model(model: str) -> DictConfig:
    return OmegaConf.load(CONF / "model" / f"{model}.yaml")


def _applies(model: str, mask: str, editor: str) -> bool:
    """The pair runs on the model's family, and the model has the twin where the editor needs one."""
    capabilities, config = _pair_capabilities(mask, editor), _model(model)
    return config.family in capabilities.families and (not capabilities.needs_inpainting_model or bool(config.get("inpaint")))


PAIRS = [(model, mask, editor) for model in TINY_MODELS for mask in MASKS for editor in EDITORS]
RUNS = [pair for pair in PAIRS if _applies(*pair)]
REFUSED = [pair for pair in PAIRS if not _applies(*pair)]


def _shortened(node: DictConfig) -> None:
    """Sets every :data:`SHORT` setting of ``node`` and of the parts inside it."""
    for key, value in node.items():
        if key in SHORT:
            node[key] = SHORT[key]
        elif isinstance(value, DictConfig):
            _shortened(value)


def _outside(mask: torch.Tensor) -> torch.Tensor:
    return mask < 0.5


# -- the pairs that apply ------------------------------------------------------------------------------


def test_every_family_runs_some_pair_and_every_editor_runs_on_some_family() -> None:
    """The derivation is not empty: each family with a backbone composes, each editor and mask source takes part."""
    assert {_model(model).family for model, _, _ in RUNS} == {"sd", "sdxl", "sd3", "flux"}
    assert {editor for _, _, editor in RUNS} == set(EDITORS) and {mask for _, mask, _ in RUNS} == set(MASKS)


@pytest.mark.parametrize(("model", "mask", "editor"), RUNS)
def test_every_pair_that_applies_passes_the_config_check(model: str, mask: str, editor: str) -> None:
    assert check_run_config(_config(model, mask, editor)).errors == []


@pytest.mark.slow
@pytest.mark.parametrize(("model", "mask", "editor"), RUNS)
def test_every_pair_that_applies_runs_on_the_tiny_model_of_its_family(model: str, mask: str, editor: str, tiny_family, monkeypatch) -> None:
    """The edit has the input's size and the mask source's own mask (what it gives alone with the same seed),
    and outside that mask the input is kept as the editor promises."""
    cfg = copy.deepcopy(_config(model, mask, editor))
    _shortened(cfg.mask)
    _shortened(cfg.editor)
    pipes = tiny_family(cfg.model.family)
    dataset = instantiate(cfg.dataset)
    item = dataset.load(dataset.item_ids()[0])
    method = instantiate(cfg.method)(pipes.base, pipes.inpaint)
    if (split_mask := method.capabilities.split_mask) is not None:
        method.use_split_mask(dataset.reference_masks()[split_mask])
    backbone = method.backbone
    assert backbone.resolution == item.image.width == item.image.height, "the item is at the working size: nothing is resized"
    decoded: list[torch.Tensor] = []
    decode = backbone.decode
    monkeypatch.setattr(backbone, "decode", lambda latents: decoded.append(latents) or decode(latents))

    def texts(seed: int = 7) -> dict:
        return dict(targets=[item.target], sources=[item.source], masks=[item.gt_mask], generators=[torch.Generator().manual_seed(seed)])

    result = method.edit_batch([item.image], **texts())[0]
    source_mask = method.mask_source.first_stages([item.image], **texts())[0].mask

    assert result.image.size == item.image.size
    assert torch.equal(result.mask, resize_mask(source_mask, (item.image.height, item.image.width), "nearest"))
    outside = _outside(result.mask).numpy()
    keeps = KEEPS_OUTSIDE[get_object(cfg.editor._target_)]
    if keeps == "pixels":
        assert np.array_equal(np.asarray(result.image)[outside], np.asarray(item.image)[outside])
    elif keeps == "latents":
        latents, source = decoded[-1], backbone.encode(item.image)
        keep = _outside(torch.nn.functional.interpolate(result.mask[None, None], size=latents.shape[-2:], mode="nearest")[0, 0])
        assert torch.equal(latents[:, :, keep], source[:, :, keep])


# -- the pairs that do not ------------------------------------------------------------------------------

REFUSAL = re.compile(r"^(?P<who>\S+) with model=(?P<model>\S+): \w+ runs on (?P<families>.+) models only, not on (?P<family>[^;]+?)(?:; (?P<fix>.+))?\.$")


@pytest.mark.parametrize(("model", "mask", "editor"), REFUSED)
def test_every_pair_that_does_not_apply_is_one_line_naming_the_family_and_the_fix(model: str, mask: str, editor: str) -> None:
    """The line names the part that does not run on the model's family and the families the pair runs on; a
    part chosen on the command line is told to choose another (the composition itself: a model of those families)."""
    errors = check_run_config(_config(model, mask, editor)).errors
    assert len(errors) == 1, errors
    line = REFUSAL.match(errors[0])
    assert line is not None and line["model"] == model and line["family"] == FAMILY_NAMES[_model(model).family], errors[0]
    assert {FAMILY_NAMES[family] for family in _pair_capabilities(mask, editor).families} <= set(line["families"].split(" and ")), errors[0]
    if line["who"] == "method=compose":
        assert line["fix"] is None
    else:
        group = line["who"].split("=")[0]
        assert line["who"] == f"{group}={dict(mask=mask, editor=editor)[group]}" and line["fix"].startswith(f"choose another {group}="), errors[0]


# -- the guide's table -------------------------------------------------------------------------------------


def _guide_table() -> dict[str, dict[str, bool]]:
    """docs/compose.md's table of which editors run on which family: model -> editor -> yes/no."""
    text = (ROOT / "docs" / "compose.md").read_text(encoding="utf-8")
    section = text.split("## Which combinations run on which family", 1)[1].split("\n## ", 1)[0]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("|")]
    header, body = rows[0], rows[2:]
    editors = [re.search(r"`(\w+)`", cell)[1] for cell in header[1:]]
    return {
        model: {editor: cell.startswith("yes") for editor, cell in zip(editors, cells, strict=True)}
        for first, *cells in body
        for model in re.findall(r"`(\w+)`", first)
    }


def test_the_guides_table_says_which_editors_run_on_each_model_as_the_parts_declare() -> None:
    """Each model config is a row; an editor runs on it with every mask source or with none."""
    table = _guide_table()
    assert sorted(table) == MODELS
    for model, editors in table.items():
        assert sorted(editors) == EDITORS
        for editor, runs in editors.items():
            assert [_applies(model, mask, editor) for mask in MASKS] == [runs] * len(MASKS), (model, editor)
