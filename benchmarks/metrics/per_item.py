"""Per-item metrics (:class:`ItemMetric`): called as ``metric(item, result)``, each returns named values for the item's row.

``nan`` marks a value that is undefined for the item (no ground-truth mask, an item without an
ImageNet class), never a made-up 0. The model-backed ones (LPIPS, CLIP score, edit accuracy,
background LPIPS) load their weights in ``__init__`` (:mod:`benchmarks.metrics.weights`) or take
an injected model (tests pass small random modules).
"""

from __future__ import annotations

import logging
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import PIL.Image
import torch
from torch import nn

from benchmarks.data.items import EditDataset, EditItem
from benchmarks.devices import resolve_device
from benchmarks.metrics.columns import Column, register_metric
from benchmarks.metrics.functional import (
    boundary_f,
    changed_region,
    changing_rate,
    flexit_resize,
    image_to_tensor,
    image_to_uint8,
    mask_iou,
    mse,
    psnr,
    region_scores,
    ssim_outside,
)
from benchmarks.metrics.imagenet_classes import (
    imagenet_class_index,
    imagenet_class_indices,
)
from benchmarks.metrics.weights import load_clip, load_lpips, load_timm_classifier
from instdiffedit.types import EditResult

log = logging.getLogger(__name__)


class ItemMetric(ABC):
    """A per-item metric: ``metric(item, result)`` gives named values for the item's row.

    :meth:`prepare` is called with the split once it is built, before any editing: a metric that
    needs something from the split (the edit accuracy, its target classes) takes it there; by
    default a metric needs nothing.
    """

    def prepare(self, dataset: EditDataset) -> None:
        """Take what the metric needs from the split; by default nothing."""

    @abstractmethod
    def __call__(self, item: EditItem, result: EditResult) -> dict[str, float]: ...


def pair_tensors(item: EditItem, result: EditResult) -> tuple[torch.Tensor, torch.Tensor]:
    source, edited = image_to_tensor(item.image), image_to_tensor(result.image)
    if source.shape != edited.shape:
        raise ValueError(
            f"The edited image is {result.image.size[0]}x{result.image.size[1]} but the input is "
            f"{item.image.size[0]}x{item.image.size[1]}; editors must return images at the input size."
        )
    return source, edited


@register_metric(
    Column("mask_iou", "mask IoU (%)", ".1f", note="IoU (%) of the method's binary mask with the ground truth at image resolution; n/a without a mask.")
)
class MaskIoU(ItemMetric):
    """Mask IoU (%) of the method's binary mask against the ground truth, at image resolution.

    nan (undefined) when the method has no mask, the item no ground truth, or an empty one.
    """

    def __call__(self, item: EditItem, result: EditResult) -> dict[str, float]:
        if item.gt_mask is None or result.mask is None or not item.gt_mask.any():
            return {"mask_iou": math.nan}
        return {"mask_iou": 100.0 * mask_iou(result.mask, item.gt_mask)}


@register_metric(
    Column("mask_boundary_f", "mask boundary F (%)", ".1f", note="DAVIS boundary F (%) of the method's mask against the ground truth; n/a without a mask.")
)
class MaskBoundaryF(ItemMetric):
    """``mask_boundary_f`` (%): DAVIS's boundary F-measure of the method's mask against the ground truth
    (:func:`~benchmarks.metrics.functional.boundary_f`, band ``tolerance`` x the diagonal); nan for
    methods without a mask and items without a ground truth."""

    def __init__(self, tolerance: float = 0.008) -> None:
        if not 0 < tolerance < 1:
            raise ValueError(f"MaskBoundaryF needs 0 < tolerance < 1, got {tolerance}.")
        self.tolerance = tolerance

    def __call__(self, item: EditItem, result: EditResult) -> dict[str, float]:
        if item.gt_mask is None or result.mask is None or not item.gt_mask.any():
            return {"mask_boundary_f": math.nan}
        return {"mask_boundary_f": 100.0 * boundary_f(result.mask > 0.5, item.gt_mask > 0.5, self.tolerance)}


@register_metric(
    Column(
        "changing_rate",
        "changing rate",
        ".2f",
        note="mean |pixel change| inside the ground-truth mask / mean |pixel change| outside it "
        "(our definition: the paper reports the number without a formula).",
    )
)
class ChangingRate(ItemMetric):
    """``changing_rate``: mean |pixel change| inside the ground-truth mask / outside it (see :func:`changing_rate`).

    Our definition; the paper gives none. nan without a ground-truth mask.
    """

    def __call__(self, item: EditItem, result: EditResult) -> dict[str, float]:
        if item.gt_mask is None:
            return {"changing_rate": math.nan}
        source, edited = pair_tensors(item, result)
        return {"changing_rate": changing_rate(source, edited, item.gt_mask)}


@register_metric(
    Column(
        "changed_iou",
        "changed IoU (%)",
        ".1f",
        note="IoU (%) of the changed region (pixels whose max-channel |difference| of the blurred images exceeds "
        "the threshold, docs/metrics-changed-region.md) with the ground truth; changed_precision, changed_recall likewise.",
    ),
    Column("changed_precision", "changed precision (%)", ".1f"),
    Column("changed_recall", "changed recall (%)", ".1f"),
    Column("change_outside", "change outside (%)", ".1f", note="share (%) of the total change (unthresholded) that lies outside the ground-truth mask."),
    Column("changed_area", "changed area (%)", ".1f"),
)
class ChangedRegion(ItemMetric):
    """Where the edit changed the image, against the ground-truth mask: for every method, mask or not.

    The changed region is :func:`~benchmarks.metrics.functional.changed_region` of the input and the
    edit (max-channel |blurred difference| > ``threshold``; docs/metrics-changed-region.md). Columns,
    all in %: ``changed_area`` (of the image), ``changed_iou``, ``changed_precision``,
    ``changed_recall`` (against the ground truth), ``change_outside`` (the share of the total change,
    unthresholded, that lies outside the ground truth). nan without a ground truth (and where a
    score is undefined: precision of an edit that changed nothing).
    """

    def __init__(self, threshold: float = 0.1, blur_sigma: float = 1.0) -> None:
        if not 0 < threshold < 1 or blur_sigma < 0:
            raise ValueError(f"ChangedRegion needs 0 < threshold < 1 and blur_sigma >= 0, got {threshold} and {blur_sigma}.")
        self.threshold, self.blur_sigma = threshold, blur_sigma

    def __call__(self, item: EditItem, result: EditResult) -> dict[str, float]:
        source, edited = pair_tensors(item, result)
        region, change = changed_region(source, edited, self.threshold, self.blur_sigma)
        values = {"changed_area": 100.0 * region.double().mean().item()}
        if item.gt_mask is None or not item.gt_mask.any():
            return {**values, **dict.fromkeys(("changed_iou", "changed_precision", "changed_recall", "change_outside"), math.nan)}
        truth = item.gt_mask > 0.5
        scores = region_scores(region, truth)
        total = change.sum().item()
        return {
            **values,
            **{f"changed_{name}": 100.0 * value for name, value in scores.items()},
            "change_outside": 100.0 * change[~truth].sum().item() / total if total else math.nan,
        }


@register_metric(
    Column("bg_psnr", "bg PSNR (dB)", ".2f"),
    Column("bg_ssim", "bg SSIM", ".3f"),
    Column("bg_mse", "bg MSE", ".4f"),
    Column("bg_lpips", "bg LPIPS x100", ".1f"),
)
class BackgroundPreservation(ItemMetric):
    """How well the edit kept the input outside the ground-truth mask (PIE-Bench's background metrics).

    Columns, all against the input image and nan without a ground-truth mask:
    ``bg_psnr`` (dB) and ``bg_mse`` (pixels in [0, 1]) over the pixels outside the mask only;
    ``bg_ssim`` on both images with the mask region blanked (see :func:`ssim_outside`); and,
    with LPIPS on, ``bg_lpips`` (x100, AlexNet LPIPS of the blanked images scaled to [-1, 1]).

    ``lpips=True`` loads LPIPS (trunk from ``weights`` or torchvision's download);
    ``lpips_model`` injects one instead (any module ``(a, b) -> distance`` on [-1, 1] images).
    """

    def __init__(
        self,
        lpips: bool = False,
        weights: str | None = None,
        lpips_model: nn.Module | None = None,
        device: str = "cpu",
        config_key: str = "metrics.background",
    ) -> None:
        self.device = resolve_device(device)
        if lpips_model is None and lpips:
            lpips_model = load_lpips(weights, key=f"{config_key}.weights", off=f"{config_key}.lpips=false")
        self.lpips_model = None if lpips_model is None else lpips_model.to(self.device).eval()

    def __call__(self, item: EditItem, result: EditResult) -> dict[str, float]:
        keys = ["bg_psnr", "bg_ssim", "bg_mse"] + (["bg_lpips"] if self.lpips_model is not None else [])
        if item.gt_mask is None:
            return dict.fromkeys(keys, math.nan)
        source, edited = pair_tensors(item, result)
        outside = (item.gt_mask <= 0.5).float()
        values = {
            "bg_psnr": psnr(source, edited, outside),
            "bg_ssim": ssim_outside(source, edited, item.gt_mask),
            "bg_mse": mse(source, edited, outside),
        }
        if self.lpips_model is not None:
            if not outside.any():
                values["bg_lpips"] = math.nan
            else:
                a, b = (2 * (x * outside) - 1 for x in (edited, source))
                with torch.no_grad():
                    distance = self.lpips_model(a[None].to(self.device), b[None].to(self.device))
                values["bg_lpips"] = 100.0 * float(distance.flatten()[0])
        return values


@register_metric(Column("lpips", "LPIPS x100", ".1f"))
class LPIPSDistance(ItemMetric):
    """``lpips``: LPIPS (AlexNet, v0.1) of the edited image to the input, x100, with FlexIT's preprocessing.

    Both images go through Resize(256) + CenterCrop(256), are scaled to [-1, 1] and compared
    by ``lpips.LPIPS(net="alex")``. ``model`` injects any module ``(a, b) -> distance``.
    """

    def __init__(
        self,
        weights: str | None = None,
        model: nn.Module | None = None,
        size: int = 256,
        device: str = "cpu",
        config_key: str = "metrics.lpips",
    ) -> None:
        self.device = resolve_device(device)
        self.size = size
        if model is None:
            model = load_lpips(weights, key=f"{config_key}.weights", off=f"~{config_key}")
        self.model = model.to(self.device).eval()

    def preprocess(self, image: PIL.Image.Image) -> torch.Tensor:
        """1 x 3 x size x size in [-1, 1]."""
        return (2 * image_to_tensor(flexit_resize(image, self.size)) - 1)[None].to(self.device)

    def __call__(self, item: EditItem, result: EditResult) -> dict[str, float]:
        with torch.no_grad():
            distance = self.model(self.preprocess(result.image), self.preprocess(item.image))
        return {"lpips": 100.0 * float(distance.flatten()[0])}


@register_metric(Column("accuracy", "accuracy (%)", ".1f"), Column("unedited", "unedited (%)", ".1f"))
class EditAccuracy(ItemMetric):
    """FlexIT's edit accuracy: does an ImageNet classifier see the target class in the edited image?

    The classifier (timm ``deit_base_patch16_384`` by default, with timm's evaluation
    preprocessing for it) picks the top-1 class among ``classes`` only -- the split's target
    classes -- and ``accuracy`` is 100 when that is the item's ``meta["target_class"]``, else
    0 (nan for items without one). ``unedited`` is 100 when it is the item's
    ``meta["source_class"]`` (nan without one).
    Class names are ImageNet names, WordNet ids or indices (see :func:`imagenet_class_index`).

    ``classes`` is a list of names or a text file with one per line; when None, :meth:`prepare`
    (called by the runner's harness before any editing) takes the split's target classes.
    ``model`` injects a classifier returning N x 1000 logits, ``data_config`` its timm data
    config (input size, interpolation, crop, mean/std).
    """

    def __init__(
        self,
        classes: Sequence[str] | str | None = None,
        model_name: str = "deit_base_patch16_384",
        weights: str | None = None,
        model: nn.Module | None = None,
        data_config: dict[str, Any] | None = None,
        device: str = "cpu",
        config_key: str = "metrics.accuracy",
    ) -> None:
        import timm.data

        self.device = resolve_device(device)
        self.class_indices: list[int] | None = None
        if classes is not None:
            self.set_classes(classes)
        if model is None:
            model = load_timm_classifier(model_name, weights, key=f"{config_key}.weights", off=f"~{config_key}")
        self.model = model.to(self.device).eval()
        config = dict(data_config) if data_config is not None else timm.data.resolve_model_data_config(model)
        self.transform = timm.data.create_transform(**config, is_training=False)

    def set_classes(self, classes: Sequence[str] | str) -> None:
        """Restrict predictions to these classes (names, WordNet ids or indices; or a file of them)."""
        if isinstance(classes, (str, os.PathLike)):
            lines = Path(classes).expanduser().read_text(encoding="utf-8").splitlines()
            classes = [line.strip() for line in lines if line.strip()]
        indices = imagenet_class_indices(classes)
        if not indices:
            raise ValueError("EditAccuracy needs at least one target class.")
        self.class_indices = sorted(set(indices))

    def prepare(self, dataset: EditDataset) -> None:
        """Take the split's target classes when none were configured.

        A split without ImageNet target classes (Imagen) has no item accuracy applies to: its
        items carry no ``target_class``, so their accuracy is nan (undefined), as for the
        Imagen-style items of Editing-Mask.
        """
        if self.class_indices is not None:
            return
        target_classes = dataset.target_classes()
        if target_classes is None:
            log.info("accuracy: dataset %s has no ImageNet target classes; its items' accuracy is n/a.", dataset.name)
            return
        self.set_classes(target_classes)

    def predict(self, image: PIL.Image.Image) -> int:
        """The ImageNet index of the top-1 class among the restricted classes."""
        if self.class_indices is None:
            raise ValueError(
                "EditAccuracy has no target classes: set metrics.accuracy.classes to the split's target "
                "classes, or call set_classes() with them before the first item."
            )
        batch = self.transform(image.convert("RGB"))[None].to(self.device)
        with torch.no_grad():
            logits = self.model(batch)
        allowed = torch.tensor(self.class_indices, device=logits.device)
        return self.class_indices[int(logits[0, allowed].argmax())]

    def __call__(self, item: EditItem, result: EditResult) -> dict[str, float]:
        if "target_class" not in item.meta:  # not an ImageNet-style item: accuracy is undefined
            return {"accuracy": math.nan, "unedited": math.nan}
        target = imagenet_class_index(item.meta["target_class"])
        if self.class_indices is not None and target not in self.class_indices:
            raise ValueError(f"Item {item.id}'s target class {item.meta['target_class']!r} is not among EditAccuracy's classes.")
        predicted = self.predict(result.image)
        source = item.meta.get("source_class")
        return {
            "accuracy": 100.0 * (predicted == target),
            "unedited": math.nan if source is None else 100.0 * (predicted == imagenet_class_index(source)),
        }


class _CLIPFeatures(nn.Module):
    """Adapter between transformers 5's CLIPModel and torchmetrics 1.9's CLIPScore.

    torchmetrics calls ``model.get_image_features(pixel_values)`` and
    ``model.get_text_features(input_ids, attention_mask)`` and expects the projected embedding
    tensors back. In transformers 5 both methods return a ``BaseModelOutputWithPooling`` whose
    ``pooler_output`` holds the projected embedding, so torchmetrics fails with
    ``AttributeError: 'BaseModelOutputWithPooling' object has no attribute 'norm'``. This
    wrapper returns ``pooler_output`` (and passes tensors from transformers 4 through). It is
    handed to this one CLIPScore instance only; torchmetrics itself is left untouched.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.config = model.config  # torchmetrics reads text_config.max_position_embeddings

    @staticmethod
    def _embedding(output: Any) -> torch.Tensor:
        return output if isinstance(output, torch.Tensor) else output.pooler_output

    def get_image_features(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self._embedding(self.model.get_image_features(*args, **kwargs))

    def get_text_features(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self._embedding(self.model.get_text_features(*args, **kwargs))


@register_metric(Column("clip_score", "CLIP score", ".3f"))
class CLIPScore(ItemMetric):
    """``clip_score``: cosine similarity of CLIP embeddings of the edited image and the target text.

    torchmetrics' CLIPScore (which reports ``max(100 cos, 0)``) divided by 100, as the paper
    reports it (0.249). ``model``/``processor`` inject a transformers ``CLIPModel`` and
    ``CLIPProcessor``; otherwise ``model_name`` is loaded from ``weights`` (a local folder),
    the HF cache or the hub.
    """

    def __init__(
        self,
        model_name: str = "openai/clip-vit-large-patch14",
        weights: str | None = None,
        model: nn.Module | None = None,
        processor: Any = None,
        device: str = "cpu",
        config_key: str = "metrics.clip_score",
    ) -> None:
        from torchmetrics.multimodal import CLIPScore as _TorchmetricsCLIPScore

        if (model is None) != (processor is None):
            raise ValueError("CLIPScore takes an injected model and processor together, or neither.")
        if model is None:
            model, processor = load_clip(model_name, weights, key=f"{config_key}.weights", off=f"~{config_key}")
        self.device = resolve_device(device)
        adapter = _CLIPFeatures(model.eval())
        self.metric = _TorchmetricsCLIPScore(model_name_or_path=lambda: (adapter, processor)).to(self.device)

    def score(self, image: PIL.Image.Image, text: str) -> float:
        """Cosine similarity (clamped at 0, as torchmetrics does) of one image and one text."""
        self.metric.reset()
        with torch.no_grad():
            self.metric.update([image_to_uint8(image).to(self.device)], [text])
            value = self.metric.compute()
        return float(value) / 100.0

    def __call__(self, item: EditItem, result: EditResult) -> dict[str, float]:
        return {"clip_score": self.score(result.image, item.target)}
