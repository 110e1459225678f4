"""How much exact joint-attention maps differ from maps renormalised over the text keys.

In SD 3.x and FLUX.1 every image query's softmax runs over image and text keys together, so the
text block of a row sums to the row's *text mass* (< 1), which varies over the image, the heads
and the layers. ``normaliser="all_keys"`` keeps the exact probabilities, ``"text_keys"``
rescales each head's text block to one before heads and layers are averaged. This script runs
one denoiser call on random latents with each normaliser, min-max normalises every map of the
text's tokens (as InstDiffEdit does before comparing maps) and prints how far apart they are.

    python -m benchmarks.models.joint_normalisers                     # the tiny SD 3.5 and FLUX.1 models
    python -m benchmarks.models.joint_normalisers --family flux --base black-forest-labs/FLUX.1-dev --size 1024

The tiny models' weights are random, so their numbers only show the code path; the real models'
numbers are the ones to quote.
"""

from __future__ import annotations

import argparse

import torch
from diffusers import FluxPipeline

from benchmarks.models.families import FamilyPipelines, load_family
from benchmarks.models.tiny_families import tiny_family_pipelines
from instdiffedit.joint_attention import Normaliser, capture_joint_attention, token_grid
from instdiffedit.token_references import flux_parts, sd3_parts, text_layout

PROMPT = "a photo of a cat sitting on a wooden bench"


def compare(pipes: FamilyPipelines, size: int, prompt: str = PROMPT, noise_level: float = 0.5, seed: int = 0) -> dict[str, float]:
    """Exact vs text-renormalised maps of the prompt's token columns, after per-map min-max."""
    maps = {normaliser: _maps(pipes, size, prompt, noise_level, seed, normaliser) for normaliser in ("all_keys", "text_keys")}
    pipe = pipes.base
    if pipes.family == "sd3":
        layout = text_layout(sd3_parts(pipe.tokenizer, pipe.tokenizer_3), prompt, reference="mean")
    else:
        layout = text_layout(flux_parts(pipe.tokenizer_2), prompt, reference="mean")
    columns = list(layout.reference)  # every token of the prompt, its special tokens included
    exact, renormalised = (_minmax(m[0][..., columns].flatten(0, 1).T) for m in (maps["all_keys"], maps["text_keys"]))
    difference = (exact - renormalised).abs()
    centred = [m - m.mean(dim=1, keepdim=True) for m in (exact, renormalised)]
    correlation = (centred[0] * centred[1]).sum(1) / (centred[0].norm(dim=1) * centred[1].norm(dim=1))
    text_mass = maps["all_keys"][0].sum(-1)
    return {
        "tokens": len(columns),
        "mean_abs_diff": difference.mean().item(),
        "max_abs_diff": difference.max().item(),
        "mean_correlation": correlation.mean().item(),
        "min_correlation": correlation.min().item(),
        "text_mass_mean": text_mass.mean().item(),
        "text_mass_min": text_mass.min().item(),
        "text_mass_max": text_mass.max().item(),
    }


@torch.no_grad()
def _maps(pipes: FamilyPipelines, size: int, prompt: str, noise_level: float, seed: int, normaliser: Normaliser) -> torch.Tensor:
    pipe = pipes.base
    transformer = pipe.transformer
    device, dtype = transformer.device, transformer.dtype
    latent_side = size // pipe.vae_scale_factor
    grid = token_grid(transformer, (latent_side, latent_side))
    generator = torch.Generator().manual_seed(seed)
    if pipes.family == "sd3":
        embeds, _, pooled, _ = pipe.encode_prompt(prompt, prompt, prompt, device=device, do_classifier_free_guidance=False)
        latents = torch.randn(1, transformer.config.in_channels, latent_side, latent_side, generator=generator)
        inputs = {"timestep": torch.tensor([1000 * noise_level], device=device)}
    else:
        embeds, pooled, text_ids = pipe.encode_prompt(prompt, prompt, device=device)
        latents = torch.randn(1, grid[0] * grid[1], transformer.config.in_channels, generator=generator)
        inputs = {
            "timestep": torch.tensor([noise_level], device=device),
            "guidance": torch.tensor([3.5], device=device) if transformer.config.guidance_embeds else None,
            "img_ids": FluxPipeline._prepare_latent_image_ids(1, *grid, device, dtype),
            "txt_ids": text_ids,
        }
    with capture_joint_attention(transformer, grid, conditional_only=False, normaliser=normaliser) as store:
        transformer(hidden_states=latents.to(device, dtype), encoder_hidden_states=embeds, pooled_projections=pooled, **inputs)
        return store.take()


def _minmax(maps: torch.Tensor) -> torch.Tensor:
    low, high = maps.amin(dim=1, keepdim=True), maps.amax(dim=1, keepdim=True)
    return (maps - low) / (high - low).clamp_min(1e-12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", choices=("sd3", "flux"), action="append", help="default: both")
    parser.add_argument("--base", help="hub id or folder of a real model (default: the tiny model)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--dtype", default="bfloat16", help="for --base models")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    families = args.family or ["sd3", "flux"]
    if args.base and len(families) != 1:
        parser.error("--base needs exactly one --family")
    print("| family | model | tokens | mean abs diff | max abs diff | mean r | min r | text mass mean (min-max) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for family in families:
        if args.base:
            pipes = load_family(family, args.base, resolution=args.size, device=args.device, dtype=args.dtype)
        else:
            pipes = tiny_family_pipelines(family, device=args.device, inpaint=False)
        r = compare(pipes, args.size)
        print(
            f"| {family} | {args.base or 'tiny'} | {r['tokens']} | {r['mean_abs_diff']:.4f} | {r['max_abs_diff']:.4f} "
            f"| {r['mean_correlation']:.4f} | {r['min_correlation']:.4f} "
            f"| {r['text_mass_mean']:.3f} ({r['text_mass_min']:.3f}-{r['text_mass_max']:.3f}) |"
        )


if __name__ == "__main__":
    main()
