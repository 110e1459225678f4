"""Write the toy model's card (models/toy/README.md) from its training report and measured runs.

    python -m benchmarks.toy.card outputs/toy/toy_shapes/instdiffedit/default outputs/toy/toy_shapes/diffedit/default

Every number in the card is read from ``training.json`` (written by the training command) or
from the result folders given (written by ``run.py``); none is typed by hand.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from benchmarks.merge import load_results
from benchmarks.references import reference_rows
from benchmarks.runner import summarize
from benchmarks.toy.model import TOY_MODEL
from benchmarks.toy.split import ToyShapesSplit

COLUMNS = {"items": "items", "mask_iou": "mask IoU (%)", "edit_success": "edit success", "changing_rate": "changing rate",
           "bg_psnr": "background PSNR (dB)", "seconds": "seconds / item (CPU)", "unet_evals": "UNet evaluations"}


def evaluation_table(run_dirs: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Per method: the run's means, and the trivial masks' IoU on the same items."""
    rows = load_results(run_dirs)
    if rows.empty:
        raise SystemExit(f"error: no results in {', '.join(map(str, run_dirs))}; run e.g. `python run.py method=instdiffedit` first.")
    summary = summarize(rows).reset_index(level="config_id", drop=True)
    split = ToyShapesSplit(n=int(rows["item_id"].str.rpartition("-")[2].astype(int).max()) + 1)
    parts = [summary]
    item_sets = {tuple(sorted(group["item_id"].unique())) for _, group in rows.groupby("method")}
    for items in sorted(item_sets, key=len, reverse=True):  # the trivial masks on each method's items
        references = reference_rows(split, list(items)).reset_index(level="config_id", drop=True)
        references.index = [f"{name} ({len(items)} items)" for name in references.index]
        parts.append(references)
    table = pd.concat(parts)
    table["items"] = table["items"].astype(int)
    return table[[c for c in COLUMNS if c in table]].rename(columns=COLUMNS)


def attention_shares(folder: Path, n_items: int = 30, seed: int = 0) -> pd.DataFrame:
    """Where the UNet's cross-attention goes: the share of each token group (start, words, end, padding)
    in a pixel's attention, on and off the object, over the single-object scenes among the toy
    split's first ``n_items`` items (InstDiffEdit's 25 guided steps, conditioned on the caption).

    In Stable Diffusion the start token takes most of it and the words mark their objects: that is
    what InstDiffEdit's masks rely on.
    """
    import torch
    import torch.nn.functional as F

    from benchmarks.toy.model import toy_pipelines
    from instdiffedit import InstDiffEdit

    editor = InstDiffEdit(toy_pipelines(folder, device="cpu").base, None)
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
        on = F.interpolate(item.gt_mask[None, None], size=(height, width), mode="area")[0, 0] > 0.5
        layout = masks.layout
        groups = {"start token": [0], "words": [i for span in layout.spans for i in span], "end token": [layout.end],
                  "padding": list(range(layout.end + 1, tokens))}
        for name, columns in groups.items():
            share = attention[..., columns].sum(-1)
            total = sums.setdefault(name, [0.0, 0.0])
            total[0] += float(share[on].mean())
            total[1] += float(share[~on].mean())
        scenes += 1
    frame = pd.DataFrame(sums, index=["on the object", "off the object"]).T / max(scenes, 1)
    frame.attrs["scenes"] = scenes
    return frame


def _losses(report: dict, part: str, every: int) -> str:
    values = report["losses"][part]
    return ", ".join(f"{step}: {loss:.4f}" for step, loss in values[:: max(1, len(values) // every)])


def card(report: dict, table: pd.DataFrame, scaling_factor: float, attention: pd.DataFrame) -> str:
    config, accuracy = report["config"], report["generator_accuracy"]
    per_prompt = pd.DataFrame(accuracy["by_prompt"]).T.rename_axis("prompt")
    retrained = report.get("classifier_retrained")
    classifier_note = (
        f"The classifier was retrained after the generator, against its autoencoder, with "
        f"`python -m benchmarks.toy.train --classifier-only` on {retrained['device']} ({retrained['seconds']:.0f} s)."
        if retrained else "The classifier was trained in the same command."
    )
    seconds = report["seconds"]
    return f"""# Toy model: a 64 px text-to-image model of toy scenes

A small model of the Stable Diffusion 1.x architecture (diffusers format), trained from scratch
on scenes of the toy world (`benchmarks/toy/render.py`): one to three coloured shapes on a
plain or lightly textured background, captioned like "a red circle and a blue square on a gray
background". It is the harness's offline default (`conf/model/toy.yaml`): every method runs on
it exactly as on Stable Diffusion, and the toy split knows every edit's true region.

`StableDiffusionPipeline.from_pretrained("models/toy")` loads it. This card is written by
`python -m benchmarks.toy.card` from `training.json` and result folders; every number is measured.

## Parts
- `vae/`: `AutoencoderKL`, 64 x 64 x 3 -> 16 x 16 x 4, latent scaling factor {scaling_factor:.3f} (1 / the latents' std, as SD's 0.18215).
- `unet/`: `UNet2DConditionModel`, channels {tuple(config['unet_channels'])}, cross-attention at 16 x 16 and 8 x 8.
- `text_encoder/`: a causal `CLIPTextModel` ({config['text_layers']} layers, width {config['text_hidden']}) over the full CLIP vocabulary; `tokenizer/`: the real CLIP BPE tokenizer, 77 tokens padded as SD 1.x pads.
- `scheduler/`: SD 1.x's noise schedule (PNDM for sampling; methods set their own schedulers).
- `classifier/`: a small CNN recognising an object's colour (6) and shape (4) in a 32 x 32 crop; it scores the generator below and gives the toy split its `edit_success` metric.

## Training
`python -m benchmarks.toy.train --out models/toy` (seed {config['seed']}, configuration below and in `training.json`), on one
{report['device']} with torch {report['torch']}: autoencoder {seconds['autoencoder']:.0f} s, text encoder {seconds.get('text_encoder', 0):.0f} s, denoiser {seconds['denoiser']:.0f} s
(torch.compile included), classifier {seconds['classifier']:.0f} s: {sum(seconds.values()) / 60:.1f} minutes in all, before the evaluation below.
Scenes are rendered on the fly; {config.get('partial_captions', 0):.0%} of them are captioned in part (some of the objects, the
background phrase or not: "a blue square", "on a gray background"), the forms in which the methods prompt the model;
captions are dropped {config['caption_dropout']:.0%} of the time for classifier-free guidance; the denoiser's weights are an
exponential moving average. {classifier_note}

| part | steps x batch | losses (step: value) |
|---|---|---|
| autoencoder (MSE + KL) | {config['vae_steps']} x {config['batch_size']} | {_losses(report, 'autoencoder', 5)} |
| text encoder (contrastive on the end token, CLIP's way; then frozen) | {config.get('text_steps', 0)} x {config['batch_size']} | {_losses(report, 'text_encoder', 5) if 'text_encoder' in report['losses'] else '-'} |
| UNet (epsilon MSE) | {config['unet_steps']} x {config['batch_size']} | {_losses(report, 'denoiser', 6)} |
| classifier (cross-entropy, colour + shape) | {config['classifier_steps']} x {config['batch_size']} | {_losses(report, 'classifier', 4)} |

Configuration: `{json.dumps(config)}`

## Generator accuracy
Every colour x shape prompt on the gray background ("a red circle on a gray background"),
{accuracy['per_prompt']} images each, 30 PNDM steps, guidance 7.5; an image counts when the classifier recognises both the
prompted colour and shape in the object's crop (the object: pixels away from the gray).
**{accuracy['accuracy']:.1%} of {accuracy['images']} images** (target: 80 % or more). The classifier itself, on 1,024 held-out
single-object scenes: {report['classifier_accuracy']['rendered']:.1%} right when rendered, {report['classifier_accuracy']['autoencoded']:.1%} after the autoencoder.

![4 samples per prompt, two prompts per row: circle, square | triangle, star; red, green, blue, yellow, purple, orange](samples.png)

{per_prompt.to_markdown()}

## Masks and edits on the toy split
`python run.py method=<method>` (the toy model and the toy split are run.py's defaults), on the CPU;
reference rows: the IoU of a centred disc of the split's mean object area and of the whole image,
on the same items.

{table.to_markdown(floatfmt=".3f")}

## Where the cross-attention goes
Share of a pixel's cross-attention per token group, averaged over the pixels on and off the
object, in {attention.attrs['scenes']} single-object scenes of the toy split (InstDiffEdit's 25 guided steps, conditioned
on the caption). InstDiffEdit inverts the start token's map and keeps the words whose maps
resemble it; that needs a start token that takes the background's attention and words that
take their objects'.

{attention.to_markdown(floatfmt=".3f")}
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="result folders of run.py on the toy split")
    parser.add_argument("--model", type=Path, default=TOY_MODEL)
    parser.add_argument("--notes", type=Path, default=None, help="a Markdown file appended to the card (findings in words)")
    args = parser.parse_args(argv)
    report = json.loads((args.model / "training.json").read_text())
    scaling_factor = json.loads((args.model / "vae" / "config.json").read_text())["scaling_factor"]
    text = card(report, evaluation_table(args.runs), scaling_factor, attention_shares(args.model))
    (args.model / "README.md").write_text(text + (args.notes.read_text() if args.notes else ""))
    print(f"Wrote {args.model / 'README.md'}")


if __name__ == "__main__":
    main()
