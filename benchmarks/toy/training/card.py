"""Write the toy models' cards (models/toy/README.md, models/toy-dit/README.md) from their training report and measured runs.

    python -m benchmarks.toy.training.card outputs/toy/toy_shapes/instdiffedit/default outputs/toy/toy_shapes/oracle_inpaint/default \
        "outputs/toy/toy_shapes/diffedit/dataset.n=12" --notes docs/toy-model-notes.md
    python -m benchmarks.toy.training.card --denoiser dit outputs/toy_dit/toy_shapes/instdiffedit/default \
        "outputs/toy_dit/toy_shapes/diffedit/dataset.n=12"

The UNet's card is written to the model folder (``--model``, default ``models/toy``), the DiT's
(``--denoiser dit``) to its sibling ``models/toy-dit``; both read the one ``training.json`` of the
training command that made them. Every number in a card is read from it or from the result
folders given (written by ``run.py``, with the card's model: ``model=toy`` or ``model=toy_dit``);
none is typed by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from diffusers import DiffusionPipeline

from benchmarks.metrics.references import reference_rows
from benchmarks.run.folder import EDIT, find_image, read_results
from benchmarks.run.runner import summarize
from benchmarks.toy.model import TOY_MODEL, sibling, toy_dit_pipelines, toy_pipelines
from benchmarks.toy.split import ToyShapesSplit
from benchmarks.toy.training.config import TWIN_LOSSES
from instdiffedit.token_references import CLIP_LENGTH

COLUMNS = {
    "items": "items",
    "mask_iou": "mask IoU (%)",
    "edit_success": "edit success",
    "changing_rate": "changing rate",
    "bg_psnr": "background PSNR (dB)",
    "seconds": "seconds / item (CPU)",
    "denoiser_evals": "UNet evaluations",
}


@dataclass(frozen=True)
class ToyDenoiser:
    """One of the toy world's text-to-image models, as its card shows it."""

    run_model: str
    """run.py's ``model=`` choice whose result folders the card reads."""
    folder_kind: str | None
    """Where the card is written: the model folder (None) or its sibling of this kind."""
    evaluations: str
    """What the ``denoiser_evals`` column counts, as the table's header says it."""
    pipeline: Callable[[Path, str], DiffusionPipeline]
    """The base pipeline from the model folder, on a device (for the attention shares)."""
    joint: bool
    """Whether its text attention is joint (one softmax over image and text keys) rather than cross-attention."""

    def folder(self, model: Path) -> Path:
        return model if self.folder_kind is None else sibling(model, self.folder_kind)


DENOISERS = {
    "unet": ToyDenoiser("toy", None, "UNet evaluations", lambda model, device: toy_pipelines(model, inpaint=False, device=device).base, joint=False),
    "dit": ToyDenoiser("toy_dit", "dit", "transformer evaluations", lambda model, device: toy_dit_pipelines(model, device=device).base, joint=True),
}


def evaluation_table(run_dirs: Sequence[str | os.PathLike], denoiser: ToyDenoiser = DENOISERS["unet"], measured_on: str = "CPU") -> pd.DataFrame:
    """Per method: the run's means, and the trivial masks' IoU on the same items (one row per
    reference mask and item set: the whole image and a centred disc of the split's mean object area);
    runs on the splits of other ``dataset.seed`` values get rows of their own, with their own references.

    Every run must be of ``denoiser``'s model; ``measured_on`` names the device of the seconds column.
    """
    rows = read_results(run_dirs)
    if rows.empty:
        raise SystemExit(
            f"error: no results in {', '.join(map(str, run_dirs))}; run e.g. `python run.py model={denoiser.run_model} method=instdiffedit` first."
        )
    if (models := set(rows["param.model"])) != {denoiser.run_model}:
        raise SystemExit(
            f"error: the runs given are of model={', '.join(sorted(map(str, models)))}, but this card is model={denoiser.run_model}'s; "
            f"give the folders of `python run.py model={denoiser.run_model} ...` runs."
        )
    parts = []
    seeds = rows.get("param.dataset.seed", pd.Series(0, index=rows.index)).fillna(0).astype(int)  # rows before the seed was recorded: 0
    for seed in sorted(seeds.unique()):  # the default split first, then the splits of other dataset.seed values
        of_seed = rows[seeds == seed]
        other_split = f"dataset.seed={seed}" if seed else ""
        summary = summarize(of_seed).reset_index(level="config_id", drop=True)
        summary.index = [f"{method} ({other_split})" if other_split else method for method in summary.index]
        parts.append(summary)
        split = ToyShapesSplit(n=int(of_seed["item_id"].str.rpartition("-")[2].astype(int).max()) + 1, seed=int(seed))
        item_sets = {tuple(sorted(group["item_id"].unique())) for _, group in of_seed.groupby("method")}
        for items in sorted(item_sets, key=len, reverse=True):  # the trivial masks on each method's items
            references = reference_rows(split, list(items)).reset_index(level="config_id", drop=True)
            references.index = [f"{name} ({len(items)} items{', ' + other_split if other_split else ''})" for name in references.index]
            parts.append(references)
    table = pd.concat(parts)
    table["items"] = table["items"].astype(int)
    names = COLUMNS | {"seconds": f"seconds / item ({measured_on})", "denoiser_evals": denoiser.evaluations}
    return table[[c for c in COLUMNS if c in table]].rename(columns=names)


def attention_shares(pipe: DiffusionPipeline, n_items: int = 30, seed: int = 0, joint: bool = False) -> pd.DataFrame:
    """Where the model's text attention goes: the share of each token group (start, words, end, padding;
    on SD 3.x without T5 its zero columns too) in a pixel's attention, on and off the object, over the
    single-object scenes among the toy split's first ``n_items`` items (InstDiffEdit's 25 guided
    steps, conditioned on the caption). With ``joint`` attention (an MMDiT: one softmax over image
    and text keys), the image tokens' share is the rest.

    In Stable Diffusion the start token takes most of it and the words mark their objects: that is
    what InstDiffEdit's masks rely on.
    """
    import torch
    import torch.nn.functional as F

    from instdiffedit import InstDiffEdit

    editor = InstDiffEdit(pipe, None)
    split = ToyShapesSplit(n=n_items)
    sums: dict[str, list[float]] = {}
    scenes = 0
    for item_id in split.item_ids():
        item = split.load(item_id)
        if item.meta["edit_kind"] != "object" or item.meta["num_objects"] != "1":
            continue
        _, masks = editor.mask_guided_edit(item.image, item.prompt, torch.Generator().manual_seed(seed))
        attention = masks.attention / masks.steps  # h x w x tokens
        height, width, tokens = attention.shape
        on = (F.interpolate(item.gt_mask[None, None], size=(height, width), mode="area")[0, 0] > 0.5).to(attention.device)
        layout = masks.layout
        groups = {
            "start token": [0],
            "words": [i for span in layout.spans for i in span],
            "end token": [layout.end],
            "padding": list(range(layout.end + 1, min(tokens, CLIP_LENGTH))),
        }
        if tokens > CLIP_LENGTH:
            groups["T5 columns (zeros: no T5)"] = list(range(CLIP_LENGTH, tokens))
        shares = {name: attention[..., columns].sum(-1) for name, columns in groups.items()}
        if joint:
            shares["image tokens"] = 1 - attention.sum(-1)
        for name, share in shares.items():
            total = sums.setdefault(name, [0.0, 0.0])
            total[0] += float(share[on].mean())
            total[1] += float(share[~on].mean())
        scenes += 1
    frame = pd.DataFrame(sums, index=["on the object", "off the object"]).T / max(scenes, 1)
    frame.attrs["scenes"] = scenes
    return frame


def _twin_time(twin: dict) -> str:
    """The twin run's time, where its log kept it (a run whose log was cut kept its evaluation only)."""
    if twin.get("seconds") is None:
        return " (its time and loss curve were not recorded)"
    return f" in {twin['seconds']:.0f} s ({twin['ms_per_step']:.1f} ms a step)"


def _twin_runs(twin: dict) -> str:
    """Each run that trained the twin: steps, learning rate, loss (runs before ``twin_loss`` existed used the UNet's), offset noise, device, time."""
    return "; then ".join(
        f"{run['steps']} steps x {run['config']['batch_size']} at a learning rate of {run['config']['twin_lr']} with "
        f"{TWIN_LOSSES[run['config'].get('twin_loss', 'min_snr')]}{_offset(run)}, on {run['device']}{_twin_time(run)}"
        for run in twin.get("runs", [twin])
    )


def _offset(run: dict) -> str:
    offset = run["config"].get("twin_noise_offset", 0.0)
    return f" and offset noise of {offset}" if offset else ""


def _losses(report: dict, part: str, every: int) -> str:
    values = report["losses"].get(part, [])
    return ", ".join(f"{step}: {loss:.4f}" for step, loss in values[:: max(1, len(values) // every)]) or "-"


def edit_grid(run_dirs: Sequence[str | os.PathLike], path: Path, n_items: int = 6) -> Path | None:
    """The qualitative grid of the first ``n_items`` items every run saved (input, ground truth, then
    per run its mask and output), each row labelled with its edit ("a red circle -> a blue star");
    written to ``path``. None when the runs saved no images."""
    from benchmarks.run.grid import qualitative_grid

    columns = [(str(read_results([d])["method"].iloc[0]), [d]) for d in run_dirs]
    items = sorted(read_results(run_dirs)["item_id"].unique())
    shown = [i for i in items if all(find_image(dirs, i, EDIT) for _, dirs in columns)][:n_items]
    if not shown:
        return None
    split = ToyShapesSplit(n=int(items[-1].rpartition("-")[2]) + 1)
    figure = qualitative_grid(shown, columns)
    width = len(figure.axes) // len(shown)
    for row, item_id in enumerate(shown):
        item = split.load(item_id)
        figure.axes[row * width].set_ylabel(f"{item_id}\n{item.source} ->\n{item.target}", fontsize=6)
    figure.savefig(path, dpi=120)
    return path


def _seconds(report: dict) -> str:
    seconds = report["seconds"]
    parts = [
        f"{name.replace('_', ' ')} {seconds[name]:.0f} s"
        for name in ("text_encoder", "autoencoder", "classifier", "denoisers", "evaluation")
        if name in seconds
    ]
    return ", ".join(parts) + (f": {seconds['total'] / 60:.1f} minutes in all" if "total" in seconds else "")


NEUTRALITY = """**A neutral test of every method.** No method default is tuned on the toy split: every method runs at
its defaults (the papers' settings, fixed before any toy result). No training loss uses the scenes' masks,
attention maps or token maps (the inpainting twin is given masks as its input, as SD-inpainting is; the
autoencoder's splice masks join two scenes' latents and never touch the denoisers); nothing is supervised
in where it attends. The split's scenes are never training scenes: each item is drawn from its own
generator, seeded from a hash of (split seed, item), the training's scenes from generators seeded by the
stage, and the training reads nothing of the split."""


def _text_encoder_part(config: dict) -> str:
    """What the card says the text encoder is."""
    size = f"{config['text_layers']} layers, width {config['text_hidden']}, projection {config['text_projection']}"
    if config.get("text_mixing", True):
        return f"a causal CLIP text encoder ({size}) over the full CLIP vocabulary"
    return (
        f"a `CLIPTextModel` ({size}) over the full CLIP vocabulary **without contextual mixing**: every layer's attention output "
        f"projection is zero (and was frozen in training), so each state is a function of its token and position alone, the "
        f"padding is the same for every caption, and the caption reaches the denoisers through its word tokens only"
    )


def _text_encoder_row(config: dict) -> str:
    """The text encoder's row of the training table: its objective."""
    pooled = "the mean of the caption's projected token states" if config.get("text_pooling", "end") == "tokens" else "the projected end token, CLIP's way"
    after = "then trained on with the UNet's loss" if config.get("text_joint") else "then frozen"
    return f"text encoder (contrastive against a small image tower on {pooled}; {after})"


def unet_card(report: dict, table: pd.DataFrame, scaling_factor: float, attention: pd.DataFrame, grid: Path | None = None) -> str:
    config, accuracy = report["config"], report["generator_accuracy"]
    retrained = report.get("classifier_retrained")
    classifier_note = (
        f"The classifier was retrained after the generator, against its autoencoder, with "
        f"`python -m benchmarks.toy.training.train --classifier-only` on {retrained['device']} ({retrained['seconds']:.0f} s)."
        if retrained
        else "The classifier was trained in the same command."
    )
    if report.get("autoencoder_from"):
        classifier_note = (
            f"The autoencoder and the classifier were taken as they were from the earlier model in `{report['autoencoder_from']}` "
            f"(`--autoencoder-from`; their rows below are its training's), the text encoder and the denoisers trained anew."
        )
    autoencoder, inpainting, dit = report["autoencoder"], report["inpainting"], report["dit_generator_accuracy"]
    steps = report["steps_done"]
    cut = report.get("deadline_cut")
    cut_note = (
        f" The `--deadline` cut the denoisers' schedule by {cut['factor']:.2f} at step {cut['at_step']} "
        f"({cut['ms_per_step']:.1f} ms a step): planned {cut['planned']}, trained {cut['cut_to']}."
        if cut
        else ""
    )
    twin = report.get("twin")
    twin_note = (
        f" The twin was then fine-tuned from this UNet as SD-inpainting was from SD (`--twin-only`: its five extra input channels "
        f"start at zero; `--twin-further` trains it on), {_twin_runs(twin)}."
        if twin
        else ""
    )
    twin_losses = "the last run's: " if twin and len(twin.get("runs", [])) > 1 else ""
    in_command = config.get("twin_init") == "base"  # the twin fine-tuned from the UNet by the training command itself
    twin_row = "inpainting twin (fine-tuned from the UNet" if twin or in_command else "inpainting twin (from random weights"
    interleaved = (
        "The UNet and the DiT train interleaved on the same batches, then the twin is fine-tuned from the UNet."
        if in_command
        else "The three denoisers train interleaved on the same batches."
    )
    graphs = "every step of the text encoder, autoencoder and denoisers one replayed CUDA graph" if report.get("cuda_graphs") else "eager steps"
    shares = ", ".join(f"{kind} {share:.0%}" for kind, share in config["mask_shares"].items())
    return f"""# Toy models: 64 px text-to-image, inpainting and SD3-architecture models of toy scenes

Small models of the Stable Diffusion architectures (diffusers format), trained from scratch on
scenes of the toy world (`benchmarks/toy/render.py`): one to three coloured shapes on a plain or
lightly textured background, captioned like "a red circle and a blue square on a gray
background". `models/toy` (SD 1.x) and its inpainting twin `models/toy-inpaint` are the
harness's offline default (`conf/model/toy.yaml`): every method runs on them exactly as on
Stable Diffusion 1.4 with SD-inpainting, and the toy split knows every edit's true region.

- `StableDiffusionPipeline.from_pretrained("models/toy")`
- `StableDiffusionInpaintPipeline.from_pretrained("models/toy-inpaint")`
- `StableDiffusion3Pipeline.from_pretrained("models/toy-dit", text_encoder_3=None, tokenizer_3=None)` (no T5, as diffusers documents SD3 without it)

This card is written by `python -m benchmarks.toy.training.card` from `training.json` and result folders; every number is measured.
{NEUTRALITY}

## Parts
- `vae/`: `AutoencoderKL`, 64 x 64 x 3 -> 16 x 16 x 4, channels {tuple(config["vae_channels"])}, no mid-block attention; latent scaling factor {scaling_factor:.3f} (1 / the latents' std, as SD's 0.18215) and shift {report.get("shift_factor", float("nan")):.4f} (their mean, for SD3 pipelines). Reconstruction PSNR {autoencoder["reconstruction_psnr"]:.1f} dB (minimum {autoencoder["reconstruction_psnr_min"]:.1f}) on {autoencoder["scenes"]} held-out scenes; decoder locality (latents inside an object's region replaced by another scene's, PSNR outside it against the scene's own decoding): median {autoencoder["splice_psnr"]:.1f} dB, minimum {autoencoder["splice_psnr_min"]:.1f} dB.
- `unet/`: `UNet2DConditionModel`, channels {tuple(config["unet_channels"])}, cross-attention at 16 x 16 and 8 x 8.
- `text_encoder/`: {_text_encoder_part(config)}; `tokenizer/`: the real CLIP BPE tokenizer, 77 tokens padded as SD 1.x pads.
- `scheduler/`: SD 1.x's noise schedule (PNDM for sampling; methods set their own schedulers).
- `classifier/`: a small CNN recognising an object's colour (6) and shape (4) in a 32 x 32 crop; it scores the generators below and gives the toy split its `edit_success` metric.
- `../toy-inpaint/unet/`: the inpainting twin, the same UNet with 9 input channels (noisy latents, mask, masked image's latents); its `vae`, `text_encoder` and `tokenizer` are links to these.
- `../toy-dit/transformer/`: `SD3Transformer2DModel`, {config["dit_layers"]} joint blocks, {config["dit_heads"]} heads of {config["dit_head_dim"]}, patch size {config["dit_patch_size"]} (a 16 x 16 token grid); both CLIP slots hold this text encoder (`CLIPTextModelWithProjection`: these weights plus the projection), no T5. Its masks and edits: [its card](../toy-dit/README.md).

## Training
`python -m benchmarks.toy.training.train --out models/toy` (seed {config["seed"]}, configuration below and in `training.json`), on one
{report["device"]} with torch {report["torch"]}, {graphs}: {_seconds(report)}.{cut_note}{twin_note}
Scenes are rendered on the fly; {config["partial_captions"]:.0%} of them are captioned in part (some of the objects, the
background phrase or not: "a blue square", "on a gray background"), the forms in which the methods prompt the model;
captions are dropped {config["caption_dropout"]:.0%} of the time for classifier-free guidance; the denoisers' weights are
exponential moving averages; {_targets_note(config)} {interleaved} {classifier_note}

| part | steps x batch | losses (step: value) |
|---|---|---|
| {_text_encoder_row(config)} | {config["text_steps"]} x {config["batch_size"]} | {_losses(report, "text_encoder", 5)} |
| autoencoder (MSE + KL; {config["splice_share"]:.0%} of each batch decoded from spliced latents) | {config["vae_steps"]} x {config["vae_batch_size"]} | {_losses(report, "vae", 5)} |
| classifier (cross-entropy, colour + shape) | {config["classifier_steps"]} x {config["batch_size"]} | {_losses(report, "classifier", 4)} |
| UNet (epsilon MSE, Min-SNR-{config["snr_gamma"]} weighted) | {steps["unet"]} x {config["batch_size"]} | {_losses(report, "unet", 6)} |
| {twin_row}; masks: {shares}) | {steps["inpaint"]} x {config["batch_size"]} | {twin_losses}{_losses(report, "inpaint", 6)} |
| DiT (rectified flow, logit-normal timesteps) | {steps["dit"]} x {config["dit_batch_size"]} | {_losses(report, "dit", 6)} |

Configuration: `{json.dumps(config)}`

## Generator accuracy
Every colour x shape prompt on the gray background ("a red circle on a gray background"),
{accuracy["per_prompt"]} images each; an image counts when the classifier recognises both the prompted colour and shape
in the object's crop (the object: pixels away from the gray). The classifier itself, on {report["classifier_accuracy"]["scenes"]:,} held-out
single-object scenes: {report["classifier_accuracy"]["rendered"]:.1%} right when rendered, {report["classifier_accuracy"]["autoencoded"]:.1%} after the autoencoder.

| model | sampling | accuracy |
|---|---|---|
| `models/toy` (UNet) | {accuracy["sampling"]} | **{accuracy["accuracy"]:.1%}** of {accuracy["images"]} images |
| `models/toy-dit` (MMDiT) | {dit["sampling"]} | **{dit["accuracy"]:.1%}** of {dit["images"]} images |

![UNet: 4 samples per prompt, two prompts per row: circle, square | triangle, star; red, green, blue, yellow, purple, orange](samples.png)

![DiT: the same prompts and layout](../toy-dit/samples.png)

{_per_prompt(accuracy)}

## The inpainting twin
On {inpainting["edits"]} held-out scenes, slot 0's object is repainted as another colour and shape (prompt: the new
object's phrase, {inpainting["steps"]} PNDM steps, guidance 7.5), given the union of the old and new objects' regions:
the classifier recognises the new object in **{inpainting["edit_success"]:.1%}** of them, and the pixels outside the region
keep a PSNR of **{inpainting["background_psnr"]:.1f} dB** (minimum {inpainting["background_psnr_min"]:.1f}) against the input.
{_condition_section(inpainting)}

![Rows: inputs, regions, outputs](../toy-inpaint/samples.png)

{_masks_section("`python run.py method=<method>` (the toy models and the toy split are run.py's defaults), on the CPU;", table, grid)}
{_attention_section("cross-attention", attention)}"""


def _targets_note(config: dict) -> str:
    """What the card says the denoisers learn to generate (``denoiser_latents``)."""
    if config.get("denoiser_latents", "sample") == "mean":
        return (
            'the denoisers learn the autoencoder posterior\'s mean (`denoiser_latents="mean"`: the posterior is wide, so its '
            "draws would add noise no input predicts to every target; the methods encode images with the mean too)."
        )
    return "the denoisers learn draws from the autoencoder's posterior (SD's recipe)."


def _condition_section(inpainting: dict) -> str:
    """The twin's loss with and without its condition (whether it reads the masked image), where measured."""
    if "condition_loss" not in inpainting:
        return ""
    loss = inpainting["condition_loss"]
    header = " | ".join(f"t = {t}" for t in loss["timesteps"])
    given = " | ".join(f"{v:.4f}" for v in loss["with"])
    zeroed = " | ".join(f"{v:.4f}" for v in loss["without"])
    return f"""
Whether it reads the masked image: its noise-prediction loss on {loss["scenes"]} held-out scenes (full captions, the
training's mask kinds), given its condition and given five zero channels instead:

| condition | {header} |
|---|{"---|" * len(loss["timesteps"])}
| the mask and the masked image's latents | {given} |
| zeros | {zeroed} |
"""


def _per_prompt(accuracy: dict) -> str:
    return pd.DataFrame(accuracy["by_prompt"]).T.rename_axis("prompt").to_markdown()


def _masks_section(command: str, table: pd.DataFrame, grid: Path | None) -> str:
    """The evaluation table with its reference rows, and the qualitative grid."""
    grid_section = (
        f"\n![The first items of the toy split: input, ground truth, then per method its mask and output; each row says its edit]({grid.name})\n"
        if grid
        else ""
    )
    return f"""## Masks and edits on the toy split
{command}
`oracle_inpaint` inpaints the true mask (the ceiling of every mask-then-inpaint method); reference rows:
the IoU of a centred disc of the split's mean object area and of the whole image, on the same items.

{table.to_markdown(floatfmt=".3f")}
{grid_section}"""


def _attention_section(kind: str, attention: pd.DataFrame, note: str = "") -> str:
    """The token groups' shares of a pixel's ``kind`` of attention (:func:`attention_shares`)."""
    return f"""## Where the {kind} goes
Share of a pixel's {kind} per token group, averaged over the pixels on and off the
object, in {attention.attrs["scenes"]} single-object scenes of the toy split (InstDiffEdit's 25 guided steps, conditioned
on the caption). InstDiffEdit inverts the start token's map and keeps the words whose maps
resemble it; that needs a start token that takes the background's attention and words that
take their objects'.{note}

{attention.to_markdown(floatfmt=".3f")}
"""


def dit_card(
    report: dict,
    table: pd.DataFrame,
    transformer: dict,
    scheduler: dict,
    attention: pd.DataFrame,
    grid: Path | None = None,
    command: str = "python -m benchmarks.toy.training.card --denoiser dit <run folders>",
) -> str:
    """The toy DiT's card: ``transformer`` and ``scheduler`` are its folder's configs, ``report`` the training command's,
    ``command`` the card command that regenerates it."""
    config, accuracy, steps = report["config"], report["dit_generator_accuracy"], report["steps_done"]
    grid_side = transformer["sample_size"] // transformer["patch_size"]
    layers = transformer["num_layers"]
    return f"""# Toy DiT: a 64 px SD3-architecture model of toy scenes

A small MMDiT of the Stable Diffusion 3 architecture (diffusers format), trained from scratch on the
scenes and captions of the toy world beside the UNet of `models/toy` (whose card, `../toy/README.md`,
describes the scenes, the shared autoencoder and text encoder, and the training command). Image and
text tokens attend jointly, as in SD 3.x, so InstDiffEdit's masks come from joint attention here and
the toy split measures them against exact masks, offline.

- `StableDiffusion3Pipeline.from_pretrained("models/toy-dit", text_encoder_3=None, tokenizer_3=None)` (no T5, as diffusers documents SD3 without it)
- `python run.py model=toy_dit method=<method>` (`conf/model/toy_dit.yaml`): the SD 3.x backbone, the toy split by default

This card is written by `python -m benchmarks.toy.training.card --denoiser dit` from `../toy/training.json` and result folders; every number is measured.
{NEUTRALITY}

## Parts
- `transformer/`: `SD3Transformer2DModel`, {layers} joint blocks, {transformer["num_attention_heads"]} heads of {
        transformer["attention_head_dim"]
    }, patch size {transformer["patch_size"]}: a {grid_side} x {grid_side} token grid on the 16 x 16 x 4 latents (the paper's 16 x 16 maps); text width {
        transformer["joint_attention_dim"]
    }, pooled width {transformer["pooled_projection_dim"]}, qk-norm {transformer["qk_norm"]}.
- `text_encoder/` = `text_encoder_2/`: the UNet's CLIP text encoder with its projection (`CLIPTextModelWithProjection`), in both CLIP slots, so the text sequence is {
        CLIP_LENGTH
    } CLIP columns (its penultimate states twice, side by side) and then the 256 zero columns that `StableDiffusion3Pipeline` puts in T5's place without T5; the model was trained with them.
- `tokenizer/`, `tokenizer_2/`, `vae/`: links to the UNet's.
- `scheduler/`: `{scheduler["_class_name"]}` (shift {scheduler["shift"]}).

## Training
Trained in the UNet's command (`python -m benchmarks.toy.training.train --out models/toy`, seed {config["seed"]}; the
[UNet's card](../toy/README.md#training) has the configuration and timings), interleaved with the UNet and its twin on
the same batches of the frozen autoencoder's latents and text encoder's states, with an exponential moving average
of the weights; captions dropped {config["caption_dropout"]:.0%} of the time for classifier-free guidance.

| part | steps x batch | learning rate | losses (step: value) |
|---|---|---|---|
| DiT (rectified flow, SD3's logit-normal timesteps, velocity target noise - x0) | {steps["dit"]} x {config["dit_batch_size"]} | {config["dit_lr"]} | {
        _losses(report, "dit", 6)
    } |

## Generator accuracy
Every colour x shape prompt on the gray background, {accuracy["per_prompt"]} images each, scored by the toy classifier
as the UNet is ({accuracy["sampling"]}): **{accuracy["accuracy"]:.1%}** of {accuracy["images"]} images
(the UNet: {report["generator_accuracy"]["accuracy"]:.1%}).

![DiT: 4 samples per prompt, two prompts per row: circle, square | triangle, star; red, green, blue, yellow, purple, orange](samples.png)

{_per_prompt(accuracy)}

{
        _masks_section(
            f"`python run.py model=toy_dit method=<method>`: maps from the joint attention of all {layers} blocks (image queries -> "
            f"text keys, exact probabilities over all keys), the start-token reference CLIP's start token (column 0: SD 3.x's default, "
            "the paper's token); SD 3.x has no inpainting twin, so the last step blends latents with this model;",
            table,
            grid,
        )
    }
{
        _attention_section(
            "joint attention",
            attention,
            note=(" In joint attention the softmax runs over the image keys too: the text groups and the image tokens sum to one."),
        )
    }
Regenerate this card with `{command}` after the `python run.py model=toy_dit ...` runs of its folders.
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="result folders of run.py on the toy split, with the card's model")
    parser.add_argument("--model", type=Path, default=TOY_MODEL, help="the toy model folder written by the training command (its training.json)")
    parser.add_argument(
        "--denoiser", choices=sorted(DENOISERS), default="unet", help="whose card: the UNet's (in --model) or the DiT's (in <model>-dit); default unet"
    )
    parser.add_argument("--measured-on", default="CPU", help="the device the runs' seconds were measured on, for the table's header")
    parser.add_argument("--device", default="cpu", help="where the attention shares are measured (cpu, cuda); default cpu")
    parser.add_argument("--notes", type=Path, default=None, help="a Markdown file appended to the card (findings in words)")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    denoiser = DENOISERS[args.denoiser]
    folder = denoiser.folder(args.model)
    report = json.loads((args.model / "training.json").read_text())
    table = evaluation_table(args.runs, denoiser, args.measured_on)
    grid = edit_grid(args.runs, folder / "edits.png")
    if grid is None and (folder / "edits.png").is_file():
        grid = folder / "edits.png"  # runs kept without their images (docs/runs/): the grid made from them stays
    attention = attention_shares(denoiser.pipeline(args.model, args.device), joint=denoiser.joint)
    if args.denoiser == "dit":
        transformer, scheduler = (json.loads((folder / part).read_text()) for part in ("transformer/config.json", "scheduler/scheduler_config.json"))
        text = dit_card(report, table, transformer, scheduler, attention, grid, command=shlex.join(["python", "-m", "benchmarks.toy.training.card", *argv]))
    else:
        vae = json.loads((args.model / "vae" / "config.json").read_text())
        report["shift_factor"] = vae["shift_factor"]
        text = unet_card(report, table, vae["scaling_factor"], attention, grid)
    (folder / "README.md").write_text(text + ("\n" + args.notes.read_text() if args.notes else ""))
    print(f"Wrote {folder / 'README.md'}")


if __name__ == "__main__":
    main()
