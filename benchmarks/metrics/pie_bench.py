"""PIE-Bench's metric set (Ju et al., ICLR 2024), as its evaluation code computes it.

Reproduced from the authors' ``evaluation/evaluate.py`` and ``evaluation/matrics_calculator.py``
(github.com/cure-lab/PnPInversion), columns in the paper's units:

- ``structure_distance`` (x10^3): MSE between the self-similarity matrices (cosine similarity of
  every pair of tokens, CLS included) of the DINO ViT-B/8 keys of the last block (index 11) of
  the input and of the edited image, each resized to 224 on its short side (at most 480 on the
  long one) and ImageNet-normalised. Whole images, no mask.
- ``pie_bg_psnr`` (dB), ``pie_bg_mse`` (x10^4), ``pie_bg_ssim`` (x10^2), ``pie_bg_lpips``
  (x10^3): both images in [0, 1] with the edit region set to 0, compared over the *whole*
  image (the blanked pixels count, equal in both); LPIPS with the SqueezeNet trunk on the
  blanked images scaled to [-1, 1]. nan when nothing is outside the mask.
- ``clip_whole``, ``clip_edited``: torchmetrics' CLIP score (``max(100 cos, 0)``, CLIP ViT-L/14)
  of the edited image with the edit prompt (PIE-Bench: the editing prompt without brackets,
  ``meta["target_prompt"]``; items without one use their target text), and of the edited
  image with everything outside the edit region set to black.

"The edit region" is the ground-truth mask with the image's outermost rows and columns set to 1,
as the authors' ``mask_decode`` makes it (``border=True``; ``border=False`` uses the annotation
alone). Where this differs from our own metrics: ``bg_psnr``/``bg_mse`` average over the outside
pixels only and use no frame; ``bg_lpips`` uses AlexNet; ``clip_score`` is the cosine (/100)
with the short target text.
"""

from __future__ import annotations

import math
from typing import Any

import PIL.Image
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import functional as TF

from benchmarks.data.items import EditItem
from benchmarks.data.pie_bench import with_border
from benchmarks.devices import resolve_device
from benchmarks.metrics.columns import Column, register_metric
from benchmarks.metrics.functional import (
    image_to_tensor,
    image_to_uint8,
    mse,
    psnr,
    ssim_outside,
)
from benchmarks.metrics.per_item import CLIPScore, ItemMetric, pair_tensors
from benchmarks.metrics.weights import load_lpips, load_timm_classifier
from instdiffedit.types import EditResult

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def evaluation_mask(mask: torch.Tensor, border: bool) -> torch.Tensor:
    """The edit region PIE-Bench's metrics use: the mask, framed by ones when ``border`` (the authors' decoding)."""
    return with_border(mask) if border else mask


@register_metric(Column("structure_distance", "structure x1000", ".2f"))
class StructureDistance(ItemMetric):
    """``structure_distance``: PIE-Bench's DINO self-similarity distance of the edited image to the input, x10^3.

    ``pixel_range=255`` feeds DINO the pixels in [0, 255] before the ImageNet normalisation, as
    the authors' ``calculate_structure_distance`` does (it never divides by 255, so their
    published numbers were computed that way); ``pixel_range=1`` normalises [0, 1] pixels, as
    DINO was trained. ``antialias=False`` resizes as torchvision 0.13 (the authors'
    environment) resized tensors. ``model`` injects a ViT whose ``blocks[layer].attn.qkv`` is
    the usual fused ``nn.Linear`` and whose ``patch_embed.patch_size`` is its patch (timm, or
    DINO's own ``vision_transformer``); on images that are not square, timm's interpolation of
    the position embeddings may differ slightly from DINO's. The default is
    timm's ``vit_base_patch8_224.dino``, the same DINO ViT-B/8 weights the authors load from
    torch hub (``facebookresearch/dino``, ``dino_vitb8``).
    """

    def __init__(
        self,
        model_name: str = "vit_base_patch8_224.dino",
        weights: str | None = None,
        model: nn.Module | None = None,
        layer: int = 11,
        size: int = 224,
        max_size: int = 480,
        pixel_range: float = 255.0,
        antialias: bool = False,
        device: str = "cpu",
        config_key: str = "metrics.structure",
    ) -> None:
        if model is None:
            model = load_timm_classifier(
                model_name,
                weights,
                key=f"{config_key}.weights",
                off=f"~{config_key}",
                what=f"StructureDistance needs the DINO weights of timm's {model_name!r}",
                dynamic_img_size=True,
            )
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.qkv = self.model.blocks[layer].attn.qkv
        patch = self.model.patch_embed.patch_size
        self.patch = (patch, patch) if isinstance(patch, int) else tuple(patch)
        self.size, self.max_size, self.pixel_range, self.antialias = size, max_size, pixel_range, antialias

    def preprocess(self, image: PIL.Image.Image) -> torch.Tensor:
        """1 x 3 x h x w: pixels times ``pixel_range``, short side resized to ``size``, ImageNet-normalised.

        The resized image is cut at its right and bottom to whole patches, the pixels DINO's
        patch convolution ignores (PIE-Bench's 512 x 512 images resize to 224 x 224: nothing cut).
        """
        pixels = image_to_tensor(image) * self.pixel_range
        resized = TF.resize(pixels, self.size, max_size=self.max_size, antialias=self.antialias)
        height, width = resized.shape[1:]
        resized = resized[:, : height - height % self.patch[0], : width - width % self.patch[1]]
        return TF.normalize(resized, IMAGENET_MEAN, IMAGENET_STD)[None].to(self.device)

    def self_similarity(self, image: PIL.Image.Image) -> torch.Tensor:
        """N x N cosine similarities of the tokens' keys (all heads concatenated) at the chosen block."""
        captured: list[torch.Tensor] = []
        handle = self.qkv.register_forward_hook(lambda module, inputs, output: captured.append(output))
        try:
            with torch.no_grad():
                self.model(self.preprocess(image))
        finally:
            handle.remove()
        qkv = captured[0][0]  # N x 3D: queries, keys, values, each with the heads side by side
        dim = qkv.shape[-1] // 3
        keys = qkv[:, dim : 2 * dim].float()
        norms = keys.norm(dim=1, keepdim=True)
        return (keys @ keys.T) / (norms @ norms.T).clamp(min=1e-8)

    def __call__(self, item: EditItem, result: EditResult) -> dict[str, float]:
        distance = F.mse_loss(self.self_similarity(result.image), self.self_similarity(item.image))
        return {"structure_distance": 1e3 * float(distance)}


@register_metric(
    Column("pie_bg_psnr", "PIE bg PSNR (dB)", ".2f"),
    Column("pie_bg_lpips", "PIE bg LPIPS x1000", ".1f"),
    Column("pie_bg_mse", "PIE bg MSE x10000", ".1f"),
    Column("pie_bg_ssim", "PIE bg SSIM x100", ".2f"),
)
class PieBackground(ItemMetric):
    """PIE-Bench's background preservation: ``pie_bg_psnr``, ``pie_bg_mse`` (x10^4), ``pie_bg_ssim`` (x10^2)
    and, with LPIPS on, ``pie_bg_lpips`` (x10^3); see the module docstring. nan without a ground-truth mask.

    ``lpips=True`` loads LPIPS with the SqueezeNet trunk (from ``weights``, torchvision's
    ``squeezenet1_1-b8a52dc0.pth``, or its download), as the authors' torchmetrics
    ``LearnedPerceptualImagePatchSimilarity(net_type="squeeze")``; ``lpips_model`` injects one.
    """

    def __init__(
        self,
        lpips: bool = True,
        weights: str | None = None,
        lpips_model: nn.Module | None = None,
        border: bool = True,
        device: str = "cpu",
        config_key: str = "metrics.pie_background",
    ) -> None:
        self.device = resolve_device(device)
        if lpips_model is None and lpips:
            lpips_model = load_lpips(weights, net="squeeze", key=f"{config_key}.weights", off=f"{config_key}.lpips=false")
        self.lpips_model = None if lpips_model is None else lpips_model.to(self.device).eval()
        self.border = border

    def __call__(self, item: EditItem, result: EditResult) -> dict[str, float]:
        keys = ["pie_bg_psnr", "pie_bg_mse", "pie_bg_ssim"] + (["pie_bg_lpips"] if self.lpips_model is not None else [])
        if item.gt_mask is None:
            return dict.fromkeys(keys, math.nan)
        mask = evaluation_mask(item.gt_mask, self.border)
        keep = (mask <= 0.5).float()
        if not keep.any():
            return dict.fromkeys(keys, math.nan)
        source, edited = pair_tensors(item, result)
        source, edited = source * keep, edited * keep
        values = {
            "pie_bg_psnr": psnr(source, edited),
            "pie_bg_mse": 1e4 * mse(source, edited),
            "pie_bg_ssim": 1e2 * ssim_outside(source, edited, mask),
        }
        if self.lpips_model is not None:
            with torch.no_grad():
                distance = self.lpips_model((2 * source - 1)[None].to(self.device), (2 * edited - 1)[None].to(self.device))
            values["pie_bg_lpips"] = 1e3 * float(distance.flatten()[0])
        return values


@register_metric(Column("clip_whole", "CLIP whole", ".2f"), Column("clip_edited", "CLIP edited", ".2f"))
class PieCLIPSimilarity(ItemMetric):
    """PIE-Bench's ``clip_whole`` and ``clip_edited`` (torchmetrics' CLIP score, 0-100); see the module docstring.

    Weights and injection as :class:`benchmarks.metrics.per_item.CLIPScore` (``model`` and ``processor``
    together). ``clip_edited`` is nan without a ground-truth mask or with an empty edit region.
    """

    def __init__(
        self,
        model_name: str = "openai/clip-vit-large-patch14",
        weights: str | None = None,
        model: nn.Module | None = None,
        processor: Any = None,
        border: bool = True,
        device: str = "cpu",
        config_key: str = "metrics.pie_clip",
    ) -> None:
        self.clip = CLIPScore(model_name, weights, model=model, processor=processor, device=device, config_key=config_key)
        self.border = border

    def __call__(self, item: EditItem, result: EditResult) -> dict[str, float]:
        text = item.meta.get("target_prompt") or item.target
        values = {"clip_whole": 100.0 * self.clip.score(result.image, text), "clip_edited": math.nan}
        if item.gt_mask is not None:
            region = evaluation_mask(item.gt_mask, self.border) > 0.5
            if region.any():
                pixels = image_to_uint8(result.image) * region
                values["clip_edited"] = 100.0 * self.clip.score(PIL.Image.fromarray(pixels.permute(1, 2, 0).numpy()), text)
        return values
