"""A mask source with an editor that takes a mask: which existing methods are such compositions (and
give the same edits), what each part keeps, and which combinations each family refuses before any
model loads."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

import run  # noqa: F401  (registers the config's resolvers)
from baselines import DiffEdit, FlowEdit, OracleInpaint, SDEdit
from baselines.flowedit import FlowEditInMask
from benchmarks.run.config_check import check_run_config
from instdiffedit import InstDiffEdit
from instdiffedit.compose import Compose
from instdiffedit.mask_sources import CentredDisc, WholeImage
from instdiffedit.region_editors import InstructionInMask, LatentBlending, TwinInpainting

CONF = Path(__file__).resolve().parents[1] / "conf"
FEW = dict(num_inference_steps=4)  # strength 0.5: two denoising steps
INSTANT = dict(FEW, num_noises=2)
NOISES = dict(FEW, num_noises=2)


def _same(a, b) -> None:
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert (a.mask is None and b.mask is None) or torch.equal(a.mask, b.mask)
    assert a.denoiser_evals == b.denoiser_evals


def _edit(editor, item, seed: int = 7):
    return editor.edit(item.image, target=item.target, source=item.source, mask=item.gt_mask, generator=torch.Generator().manual_seed(seed))


# -- existing methods as compositions ----------------------------------------------------------------


@pytest.mark.slow
def test_instdiffedit_is_its_instant_masks_with_the_twin(tiny, item) -> None:
    """Its mask-guided denoising makes the masks (their latents are not used), then the twin repaints."""
    method = InstDiffEdit(tiny.base, tiny.inpaint, inpaint_steps=2, **INSTANT)
    composed = Compose(tiny.base, tiny.inpaint, mask=functools.partial(InstDiffEdit, **INSTANT), editor=functools.partial(TwinInpainting, inpaint_steps=2))
    a, b = _edit(method, item), _edit(composed, item)
    _same(a, b)
    assert torch.equal(a.mask_history, b.mask_history) and composed.capabilities.mask_history


@pytest.mark.slow
def test_diffedit_is_its_noise_difference_mask_with_the_twin(tiny, item) -> None:
    method = DiffEdit(tiny.base, tiny.inpaint, inpaint_steps=2, **NOISES)
    composed = Compose(tiny.base, tiny.inpaint, mask=functools.partial(DiffEdit, **NOISES), editor=functools.partial(TwinInpainting, inpaint_steps=2))
    _same(_edit(method, item), _edit(composed, item))


@pytest.mark.slow
@pytest.mark.parametrize("twin", [True, False])
def test_the_oracle_is_the_items_mask_with_the_twin_or_without_one_with_latent_blending(tiny, item, twin: bool) -> None:
    inpaint = tiny.inpaint if twin else None
    method = OracleInpaint(tiny.base, inpaint, inpaint_steps=2)
    editor = functools.partial(TwinInpainting if twin else LatentBlending, inpaint_steps=2)
    composed = Compose(tiny.base, inpaint, mask=OracleInpaint, editor=editor)
    _same(_edit(method, item), _edit(composed, item))
    assert composed.capabilities.needs_ground_truth_mask and composed.capabilities.needs_inpainting_model == twin


@pytest.mark.slow
def test_sdedit_is_the_whole_image_with_sdedit_composited_inside(tiny, item) -> None:
    """A no-mask method is not a composition of its own, but equals one: the whole image as the mask."""
    method = SDEdit(tiny.base, **FEW)
    composed = Compose(tiny.base, tiny.inpaint, mask=WholeImage, editor=functools.partial(InstructionInMask, editor=functools.partial(SDEdit, **FEW)))
    a, b = _edit(method, item), _edit(composed, item)
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image)) and a.denoiser_evals == b.denoiser_evals
    assert a.mask is None and bool(b.mask.all())


@pytest.mark.slow
def test_flowedit_is_the_whole_image_with_flowedit_restricted_to_it(tiny_family, item) -> None:
    pipes = tiny_family("sd3")
    settings = dict(num_inference_steps=4, n_max=2)
    a = _edit(FlowEdit(pipes.base, **settings), item)
    b = _edit(Compose(pipes.base, None, mask=WholeImage, editor=functools.partial(FlowEditInMask, **settings)), item)
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image)) and a.denoiser_evals == b.denoiser_evals


# -- what each part keeps --------------------------------------------------------------------------------


def _item_at_working_size():
    from benchmarks.data.synthetic import SyntheticDataset

    return SyntheticDataset(n=1, size=64).load("synthetic-00000")  # the tiny model's size: no resizing


@pytest.mark.slow
def test_an_editor_composited_inside_the_mask_keeps_every_input_pixel_outside_it(tiny) -> None:
    item = _item_at_working_size()
    composed = Compose(tiny.base, None, mask=OracleInpaint, editor=functools.partial(InstructionInMask, editor=functools.partial(SDEdit, **FEW)))
    result = _edit(composed, item)
    outside = ~(item.gt_mask > 0.5).numpy()
    edited, source = np.asarray(result.image), np.asarray(item.image)
    assert np.array_equal(edited[outside], source[outside])
    assert not np.array_equal(edited[~outside], source[~outside]), "inside the mask the edit shows"


@pytest.mark.slow
def test_flowedit_restricted_to_a_mask_keeps_the_source_latents_outside_it(tiny_family, item) -> None:
    flowedit = FlowEdit(tiny_family("flux").base, num_inference_steps=4, n_max=2)
    keep = torch.zeros(64, 64)
    keep[16:48, 16:48] = 1
    source = flowedit.backbone.encode(item.image)
    latents = flowedit.edited_latents(item.image, target=item.target, source=item.source, generator=torch.Generator().manual_seed(3), keep=keep)
    region = torch.nn.functional.interpolate(keep[None, None], size=latents.shape[-2:], mode="nearest").bool().expand_as(latents)
    assert torch.equal(latents[~region], source[~region]) and not torch.equal(latents[region], source[region])


@pytest.mark.slow
def test_the_centred_disc_is_the_splits_and_is_refused_until_it_is_handed_over(tiny, item) -> None:
    composed = Compose(tiny.base, tiny.inpaint, mask=CentredDisc, editor=functools.partial(TwinInpainting, inpaint_steps=2))
    assert composed.capabilities.split_mask == "disc"
    with pytest.raises(ValueError, match="use_split_mask"):
        _edit(composed, item)
    disc = torch.zeros(40, 40)
    disc[10:30, 10:30] = 1
    composed.use_split_mask(disc)
    assert _edit(composed, item).mask.sum() == 40 * 40  # the 20 x 20 square at the item's 80 px


# -- the config check ------------------------------------------------------------------------------------


def _check(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["method=compose", "dataset=toy_shapes", *overrides], return_hydra_config=True)
    return check_run_config(cfg)


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (
            ["model=tiny", "editor=flowedit"],
            "editor=flowedit with model=tiny: FlowEditInMask runs on SD 3.x and FLUX.1 models only, not on SD 1.x/2.x; choose another editor= "
            "(docs/compose.md says which run on each family).",
        ),
        (
            ["model=tiny_sd3", "editor=twin"],
            "editor=twin with model=tiny_sd3: TwinInpainting runs on SD 1.x/2.x and SDXL and FLUX.1 models only, not on SD 3.x; choose another editor= "
            "(docs/compose.md says which run on each family).",
        ),
        (["model=toy", "model.inpaint=false", "editor=twin"], "editor=twin edits with the family's inpainting twin and model=toy has none"),
        (["model=tiny", "dataset=synthetic", "mask=disc"], "mask=disc edits inside the split's reference mask 'disc' and dataset=synthetic has none"),
        (
            ["model=tiny", "editor=instruction", "editor.editor._target_=baselines.FlowEdit"],
            "editor.editor with model=tiny: FlowEdit runs on SD 3.x and FLUX.1 models only",
        ),
        (["model=tiny", "mask.threshold=2"], "mask.threshold=2: threshold must be in [0, 1), got 2"),
        (["model=tiny", "method=sdedit", "mask=oracle"], "mask=oracle: method=sdedit takes no mask; mask= chooses a part of method=compose"),
    ],
)
def test_a_pair_that_cannot_run_is_one_line_before_any_model_loads(overrides: list[str], line: str) -> None:
    errors = _check(*overrides).errors
    assert len(errors) == 1 and errors[0].startswith(line), errors


def test_the_oracle_mask_on_a_split_without_masks_is_refused(tmp_path: Path) -> None:
    (tmp_path / "list.txt").write_text("1 <> A photo of a cat. <> cat <> a dog\n")
    errors = _check("model=tiny", "mask=oracle", "dataset=imagen", f"dataset.list_path={tmp_path / 'list.txt'}").errors
    assert errors == ["mask=oracle needs ground-truth masks and dataset=imagen has none."]
