"""Metrics of edited images: pure functions over tensors, per-item metric objects, corpus metrics.

Per-item metrics are called as ``metric(item, result)`` and return named values for the item's
row; ``nan`` marks a value that is undefined for the item (never a made-up 0). Corpus metrics
(FID, SFID/CSFID) need every item of a run at once: ``metric.compute(pairs)`` takes
``(item, edited image)`` pairs, normally read back from the images a run saved
(:func:`saved_pairs`), so they are computed once at the end and survive resumed runs.

Images are float tensors in [0, 1] of shape 3 x H x W; masks are H x W with 1 = edit region.

Model-backed metrics load their weights once, in ``__init__`` (so a run can build every metric
before any editing starts), from a local path given by their ``weights`` config key or else by
the library's normal download. When the weights cannot be had they raise
:class:`MetricUnavailableError`, whose one-sentence message names the weights, the config key
for a local copy and how to turn the metric off. Every model-backed metric also takes an
injected model (tests pass small random modules).
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import PIL.Image
import torch
from torch import nn
from torchvision.transforms import functional as TF

from benchmarks.datasets import EditDataset, EditItem
from benchmarks.models import resolve_device
from instdiffedit.types import EditResult

log = logging.getLogger(__name__)

_TRUTHY = {"1", "on", "yes", "true"}


class MetricUnavailableError(RuntimeError):
    """A metric's weights could neither be found locally nor downloaded; the message says how to fix it."""


# --------------------------------------------------------------------------------------------
# Pure functions over tensors
# --------------------------------------------------------------------------------------------


def mask_iou(predicted: torch.Tensor, truth: torch.Tensor) -> float:
    """Intersection over union of two binary masks of the same shape; nan when both are empty."""
    if predicted.shape != truth.shape:
        raise ValueError(f"Mask shapes differ: predicted {tuple(predicted.shape)}, ground truth {tuple(truth.shape)}.")
    predicted, truth = predicted.bool(), truth.bool()
    union = (predicted | truth).sum().item()
    return (predicted & truth).sum().item() / union if union else math.nan


def _check_pair(source: torch.Tensor, edited: torch.Tensor, mask: torch.Tensor | None = None) -> None:
    if source.dim() != 3 or source.shape != edited.shape:
        raise ValueError(
            f"Expected two images of the same shape 3 x H x W, got {tuple(source.shape)} and {tuple(edited.shape)}."
        )
    if mask is not None and mask.shape != source.shape[1:]:
        raise ValueError(f"Mask shape {tuple(mask.shape)} differs from the image size {tuple(source.shape[1:])}.")


def changing_rate(source: torch.Tensor, edited: torch.Tensor, mask: torch.Tensor) -> float:
    """How much more the image changed inside the ground-truth mask than outside it.

    Definition (ours; the InstDiffEdit paper reports a "changing rate" without a formula):
    the mean absolute pixel change ``|edited - source|`` over the pixels inside the mask (all
    channels), divided by the mean absolute pixel change over the pixels outside it. Higher
    means more local editing; 1 means the change is spread evenly.

    ``source`` and ``edited`` are 3 x H x W in [0, 1]; ``mask`` is H x W, inside where > 0.5.
    nan when the mask is empty or covers the whole image, or nothing changed outside it.
    """
    _check_pair(source, edited, mask)
    inside = mask > 0.5
    if not inside.any() or inside.all():
        return math.nan
    change = (edited.double() - source.double()).abs()
    outside_change = change[:, ~inside].mean().item()
    if outside_change == 0:
        return math.nan
    return change[:, inside].mean().item() / outside_change


def mse(source: torch.Tensor, edited: torch.Tensor, region: torch.Tensor | None = None) -> float:
    """Mean squared error over all channels of the pixels where ``region == 1`` (all pixels when None).

    nan when the region is empty.
    """
    _check_pair(source, edited, region)
    squared = (edited.double() - source.double()) ** 2
    if region is not None:
        selected = region > 0.5
        if not selected.any():
            return math.nan
        squared = squared[:, selected]
    return squared.mean().item()


def psnr(source: torch.Tensor, edited: torch.Tensor, region: torch.Tensor | None = None, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / MSE)``, over the region (see :func:`mse`).

    ``inf`` for identical pixels; nan when the region is empty.
    """
    error = mse(source, edited, region)
    if math.isnan(error):
        return math.nan
    return math.inf if error == 0 else 10.0 * math.log10(data_range**2 / error)


def ssim_outside(source: torch.Tensor, edited: torch.Tensor, mask: torch.Tensor) -> float:
    """SSIM of the two images with the mask region blanked (set to 0) in both, as PIE-Bench does.

    Uses torchmetrics' functional SSIM (Gaussian window 11, sigma 1.5, data range 1). The
    blanked pixels are equal in both images, so the value measures the background, but windows
    straddling the mask edge still see it. nan when the mask covers the whole image or the
    image is smaller than the 11-pixel window.
    """
    from torchmetrics.functional.image import structural_similarity_index_measure

    _check_pair(source, edited, mask)
    keep = (mask <= 0.5).to(source.dtype)
    if not keep.any() or min(source.shape[1:]) < 11:
        return math.nan
    value = structural_similarity_index_measure(
        (edited * keep)[None].float(), (source * keep)[None].float(), data_range=1.0
    )
    return float(value)


def image_to_tensor(image: PIL.Image.Image) -> torch.Tensor:
    """A PIL image as a float RGB tensor 3 x H x W in [0, 1]."""
    return TF.pil_to_tensor(image.convert("RGB")).float() / 255.0


def image_to_uint8(image: PIL.Image.Image) -> torch.Tensor:
    """A PIL image as a uint8 RGB tensor 3 x H x W."""
    return TF.pil_to_tensor(image.convert("RGB"))


def flexit_resize(image: PIL.Image.Image, size: int = 256) -> PIL.Image.Image:
    """FlexIT's evaluation preprocessing: Resize(size) of the short side, then CenterCrop(size)."""
    return TF.center_crop(TF.resize(image.convert("RGB"), size), [size, size])


def _pair_tensors(item: EditItem, result: EditResult) -> tuple[torch.Tensor, torch.Tensor]:
    source, edited = image_to_tensor(item.image), image_to_tensor(result.image)
    if source.shape != edited.shape:
        raise ValueError(
            f"The edited image is {result.image.size[0]}x{result.image.size[1]} but the input is "
            f"{item.image.size[0]}x{item.image.size[1]}; editors must return images at the input size."
        )
    return source, edited


# --------------------------------------------------------------------------------------------
# ImageNet class names
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _imagenet_names() -> tuple[list[str], list[str]]:
    """WordNet ids and lemma strings ("tench, Tinca tinca") of the 1000 ImageNet-1k classes, by index."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo("imagenet-1k")
    return list(info.label_names()), list(info.label_descriptions())


def imagenet_class_index(name: str) -> int:
    """The ImageNet-1k index of a class given by index, WordNet id or name.

    Accepts ``"160"``, ``"n02088094"``, the full lemma string ``"Afghan hound, Afghan"``, its
    first lemma ``"Afghan hound"`` or any other lemma (``"Afghan"``); exact matches win over
    case-insensitive ones. Raises ``KeyError`` naming the class when it does not map, and when
    a name is ambiguous (``"crane"`` is a bird and a machine) with the WordNet ids to use instead.
    """
    wnids, descriptions = _imagenet_names()
    text = str(name).strip()
    if text.isdigit() and int(text) < len(wnids):
        return int(text)
    if text in wnids:
        return wnids.index(text)
    lemmas = [[lemma.strip() for lemma in d.split(",")] for d in descriptions]
    rules: list[Callable[[int], bool]] = [
        lambda i: descriptions[i] == text,
        lambda i: lemmas[i][0] == text,
        lambda i: text in lemmas[i],
        lambda i: descriptions[i].casefold() == text.casefold(),
        lambda i: lemmas[i][0].casefold() == text.casefold(),
        lambda i: text.casefold() in (lemma.casefold() for lemma in lemmas[i]),
    ]
    for rule in rules:
        found = [i for i in range(len(wnids)) if rule(i)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            options = "; ".join(f"{wnids[i]} ({descriptions[i]})" for i in found)
            raise KeyError(f"ImageNet class name {text!r} is ambiguous: give its WordNet id instead, one of {options}.")
    raise KeyError(f"{text!r} is not an ImageNet-1k class name, WordNet id or index (see timm.data.ImageNetInfo).")


def imagenet_class_indices(names: Iterable[str]) -> list[int]:
    """:func:`imagenet_class_index` of every name; one error naming every name that does not map."""
    indices, problems = [], []
    for name in names:
        try:
            indices.append(imagenet_class_index(name))
        except KeyError as error:
            problems.append(str(error.args[0]))
    if problems:
        raise KeyError(" ".join(problems))
    return indices


# --------------------------------------------------------------------------------------------
# Loading weights
# --------------------------------------------------------------------------------------------


def _unavailable(
    what: str, reason: str, key: str, off: str | None, local: str = "/path/to/local/copy"
) -> MetricUnavailableError:
    """One sentence: what is needed, why it is missing, the setting for a local copy, how to turn the metric off."""
    fix = f"set {key}={local}" + (f" or turn the metric off with {off}" if off else "")
    return MetricUnavailableError(f"{what} {reason}; {fix}.")


def _short(error: BaseException) -> str:
    """The first line of an error, for a clause inside a one-sentence message."""
    text = str(getattr(error, "reason", None) or error).strip().splitlines()
    return (text[0] if text else type(error).__name__).rstrip(".")


def _hub_offline() -> bool:
    # Read at call time: huggingface_hub reads HF_HUB_OFFLINE only once, at import.
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUTHY


_LPIPS_TRUNKS = {"alex": ("AlexNet", "alexnet-owt-7be5be79.pth"), "squeeze": ("SqueezeNet 1.1", "squeezenet1_1-b8a52dc0.pth")}
"""LPIPS trunks: torchvision's ImageNet network and its weight file name in the torch hub cache."""


def load_lpips(
    weights: str | None = None, *, net: str = "alex", key: str = "metrics.lpips.weights", off: str = "~metrics.lpips"
) -> nn.Module:
    """LPIPS v0.1 with the AlexNet (``net="alex"``) or SqueezeNet 1.1 (``"squeeze"``) trunk (the ``lpips``
    package; its linear layers ship with it, the same as torchmetrics' copies).

    The trunk is torchvision's ImageNet network: from ``weights`` (a torchvision state dict,
    e.g. ``alexnet-owt-7be5be79.pth``) when given, else from the torch hub cache or
    torchvision's download.
    """
    import lpips

    if net not in _LPIPS_TRUNKS:
        raise ValueError(f"LPIPS trunk must be one of {sorted(_LPIPS_TRUNKS)}, got {net!r}.")
    trunk, file = _LPIPS_TRUNKS[net]
    what = f"LPIPS needs torchvision's ImageNet {trunk} weights ({file}), "
    with warnings.catch_warnings():  # torchvision's deprecation of `pretrained=`, used by lpips
        warnings.simplefilter("ignore", UserWarning)
        if weights is None:
            try:
                return lpips.LPIPS(net=net, verbose=False).eval()
            except (OSError, RuntimeError) as error:
                raise _unavailable(
                    what + "which",
                    f"are not in the torch hub cache ({torch.hub.get_dir()}) and could not be downloaded ({_short(error)})",
                    key, off, f"/path/to/{file}",
                ) from None
        path = Path(weights).expanduser()
        if not path.is_file():
            raise _unavailable(what + "and", f"{path} is not a file", key, off, f"/path/to/{file}")
        model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    # lpips splits the trunk's `features` into slices that keep the torchvision child names.
    for name, parameter in model.net.named_parameters():
        source = "features." + name.split(".", 1)[1]
        if source not in state:
            raise _unavailable(
                what + "and", f"{path} is not a torchvision {trunk} state dict (no {source})", key, off, f"/path/to/{file}"
            )
        parameter.data.copy_(state[source])
    return model.eval()


_INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"


def load_inception(
    weights: str | None = None,
    *,
    antialias: bool = False,
    key: str = "metrics.corpus.fid.weights",
    off: str | None = "~metrics.corpus.fid",
) -> nn.Module:
    """The FID Inception v3 (torch-fidelity's ``inception-v3-compat``, via torchmetrics), 2048-d pool features.

    Takes uint8 images N x 3 x H x W of any size and resizes them to 299 inside: with
    ``antialias=False`` like TensorFlow's FID code (torch-fidelity's default), with ``True``
    with antialiasing (torchmetrics' default). ``weights`` is torch-fidelity's weight file.
    """
    from torchmetrics.image.fid import NoTrainInceptionV3

    if weights is not None and not Path(weights).expanduser().is_file():
        raise _unavailable(
            f"The FID Inception v3 needs torch-fidelity's weights ({_INCEPTION_FILE}), and",
            f"{weights} is not a file", key, off, f"/path/to/{_INCEPTION_FILE}",
        )
    try:
        net = NoTrainInceptionV3(
            name="inception-v3-compat",
            features_list=["2048"],
            feature_extractor_weights_path=None if weights is None else str(Path(weights).expanduser()),
            antialias=antialias,
        )
    except (OSError, RuntimeError) as error:
        raise _unavailable(
            f"The FID Inception v3 needs torch-fidelity's weights ({_INCEPTION_FILE}), which",
            f"are not in the torch hub cache ({torch.hub.get_dir()}) and could not be downloaded ({_short(error)})",
            key, off, f"/path/to/{_INCEPTION_FILE}",
        ) from None
    net.num_features = 2048  # read by torchmetrics' FID instead of probing with a dummy image
    return net


def inception_description(antialias: bool) -> str:
    """How features of :func:`load_inception` are made; stored with ImageNet means so they are never mixed."""
    return f"torch-fidelity inception-v3-compat pool 2048, resize to 299 antialias={antialias}"


def load_clip(
    model_name: str = "openai/clip-vit-large-patch14",
    weights: str | None = None,
    *,
    key: str = "metrics.clip_score.weights",
    off: str = "~metrics.clip_score",
) -> tuple[nn.Module, Any]:
    """A transformers ``CLIPModel`` and ``CLIPProcessor`` from a local folder, the HF cache, or the hub."""
    from transformers import CLIPModel, CLIPProcessor

    def load(source: str, **kwargs: Any) -> tuple[nn.Module, Any]:
        return CLIPModel.from_pretrained(source, **kwargs).eval(), CLIPProcessor.from_pretrained(source, **kwargs)

    what = f"CLIPScore needs the CLIP model {model_name!r}"
    if weights is not None:
        folder = Path(weights).expanduser()
        try:
            return load(str(folder), local_files_only=True)
        except OSError:
            raise _unavailable(
                what + ", and", f"{folder} is not a folder with a CLIPModel and CLIPProcessor saved by save_pretrained",
                key, off, "/path/to/clip/folder",
            ) from None
    try:
        return load(model_name, local_files_only=True)
    except OSError:
        pass
    if _hub_offline():
        reason = "not in the local Hugging Face cache and HF_HUB_OFFLINE is set"
    else:
        try:
            return load(model_name)
        except OSError:
            reason = "not in the local Hugging Face cache and the hub is unreachable"
    raise _unavailable(what + ", which is", reason, key, off, "/path/to/clip/folder")


def load_timm_classifier(
    model_name: str = "deit_base_patch16_384",
    weights: str | None = None,
    *,
    key: str = "metrics.accuracy.weights",
    off: str = "~metrics.accuracy",
    what: str | None = None,
    **create_kwargs: Any,
) -> nn.Module:
    """A pretrained timm model, from a local weight file, the HF cache, or the hub.

    ``what`` begins the error sentence (default: EditAccuracy's); ``create_kwargs`` go to
    ``timm.create_model`` (e.g. ``dynamic_img_size=True``).
    """
    import timm
    from huggingface_hub import try_to_load_from_cache

    what = what or f"EditAccuracy needs the ImageNet weights of timm's {model_name!r}"
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise _unavailable(what + ", and", f"{path} is not a file", key, off, "/path/to/weights.safetensors")
        return timm.create_model(model_name, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **create_kwargs).eval()
    pretrained_cfg = timm.models.get_pretrained_cfg(model_name)
    if pretrained_cfg is None:
        raise ValueError(f"timm has no pretrained model named {model_name!r}.")
    hub_id = pretrained_cfg.hf_hub_id
    if hub_id:
        for filename in ("model.safetensors", "pytorch_model.bin"):
            cached = try_to_load_from_cache(hub_id, filename)
            if isinstance(cached, str):
                return timm.create_model(model_name, pretrained=True, pretrained_cfg_overlay={"file": cached}, **create_kwargs).eval()
    if _hub_offline():
        reason = "not in the local Hugging Face cache and HF_HUB_OFFLINE is set"
    else:
        try:
            return timm.create_model(model_name, pretrained=True, **create_kwargs).eval()
        except (OSError, RuntimeError) as error:
            reason = f"not in the local Hugging Face cache and could not be downloaded ({type(error).__name__})"
    raise _unavailable(what + ", which are", reason, key, off, "/path/to/weights.safetensors")


# --------------------------------------------------------------------------------------------
# Per-item metrics
# --------------------------------------------------------------------------------------------


class MaskIoU:
    """Mask IoU (%) of the method's binary mask against the ground truth, at image resolution.

    nan (undefined) when the method has no mask, the item no ground truth, or an empty one.
    """

    def __call__(self, item: EditItem, result: EditResult) -> dict[str, float]:
        if item.gt_mask is None or result.mask is None or not item.gt_mask.any():
            return {"mask_iou": math.nan}
        return {"mask_iou": 100.0 * mask_iou(result.mask, item.gt_mask)}


class ChangingRate:
    """``changing_rate``: mean |pixel change| inside the ground-truth mask / outside it (see :func:`changing_rate`).

    Our definition; the paper gives none. nan without a ground-truth mask.
    """

    def __call__(self, item: EditItem, result: EditResult) -> dict[str, float]:
        if item.gt_mask is None:
            return {"changing_rate": math.nan}
        source, edited = _pair_tensors(item, result)
        return {"changing_rate": changing_rate(source, edited, item.gt_mask)}


class BackgroundPreservation:
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
        source, edited = _pair_tensors(item, result)
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


class LPIPSDistance:
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


class CLIPScore:
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


class EditAccuracy:
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
        target_classes = getattr(dataset, "target_classes", None)
        if target_classes is None:
            log.info("accuracy: dataset %s has no ImageNet target classes; its items' accuracy is n/a.", dataset.name)
            return
        self.set_classes(target_classes())

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


# --------------------------------------------------------------------------------------------
# Corpus metrics
# --------------------------------------------------------------------------------------------


Pairs = Iterable[tuple[EditItem, PIL.Image.Image]]


def saved_pairs(dataset: EditDataset, image_dir: str | Path, item_ids: Iterable[str] | None = None) -> Iterator[tuple[EditItem, PIL.Image.Image]]:
    """``(item, edited image)`` for every item (of ``item_ids``, default all) whose edited image was saved.

    Reads ``image_dir/<item id>.png`` as the runner writes them; items without one (failed or
    not yet run) are skipped. Lazy: one image in memory at a time.
    """
    folder = Path(image_dir)
    for item_id in dataset.item_ids() if item_ids is None else item_ids:
        path = folder / f"{item_id}.png"
        if path.is_file():
            with PIL.Image.open(path) as image:
                edited = image.convert("RGB")
            yield dataset.load(item_id), edited


def _batches(tensors: Iterable[tuple[torch.Tensor, Any]], batch_size: int) -> Iterator[tuple[torch.Tensor, list[Any]]]:
    """Stacks of consecutive same-shaped tensors (at most ``batch_size``), with their tags."""
    batch: list[torch.Tensor] = []
    tags: list[Any] = []
    for tensor, tag in tensors:
        if batch and (len(batch) == batch_size or tensor.shape != batch[0].shape):
            yield torch.stack(batch), tags
            batch, tags = [], []
        batch.append(tensor)
        tags.append(tag)
    if batch:
        yield torch.stack(batch), tags


class FID:
    """``fid``: Fréchet Inception Distance of the edited images to the input images (torchmetrics).

    torchmetrics' ``FrechetInceptionDistance`` on the 2048-d pool features of the FID Inception
    v3 (torch-fidelity weights, or ``weights``), images at their own size resized to 299 inside
    (``antialias=False``: like TensorFlow's FID code). ``feature`` injects any module mapping
    uint8 N x 3 x H x W images to N x D features. Also reports ``fid_items``. nan with fewer
    than 2 items.
    """

    def __init__(
        self,
        weights: str | None = None,
        feature: nn.Module | None = None,
        antialias: bool = False,
        batch_size: int = 32,
        device: str = "cpu",
        config_key: str = "metrics.corpus.fid",
    ) -> None:
        from torchmetrics.image.fid import FrechetInceptionDistance

        if feature is None:
            feature = load_inception(weights, antialias=antialias, key=f"{config_key}.weights", off=f"~{config_key}")
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.metric = FrechetInceptionDistance(feature=feature, normalize=False).to(self.device)

    def compute(self, pairs: Pairs) -> dict[str, float]:
        self.metric.reset()
        real: list[tuple[torch.Tensor, None]] = []
        fake: list[tuple[torch.Tensor, None]] = []

        def flush(images: list[tuple[torch.Tensor, None]], is_real: bool) -> None:
            for batch, _ in _batches(images, self.batch_size):
                self.metric.update(batch.to(self.device), real=is_real)
            images.clear()

        count = 0
        with torch.no_grad():
            for item, edited in pairs:
                real.append((image_to_uint8(item.image), None))
                fake.append((image_to_uint8(edited), None))
                count += 1
                if len(real) >= self.batch_size:
                    flush(real, True)
                    flush(fake, False)
            flush(real, True)
            flush(fake, False)
            value = float(self.metric.compute()) if count >= 2 else math.nan
        return {"fid": value, "fid_items": float(count)}


def load_feature_means(path: str | Path) -> dict[str, Any]:
    """The ImageNet-train mean features written by ``python -m benchmarks.feature_means``."""
    return torch.load(Path(path).expanduser(), map_location="cpu", weights_only=True)


class SFID:
    """FlexIT's ``sfid`` and ``csfid``: squared L2 between mean Inception features of edited images and ImageNet-train means.

    Each edited image goes through Resize(256) + CenterCrop(256) (FlexIT) and the FID
    Inception v3 (2048-d pool features). ``sfid`` = ||mean over all edited images - mean over
    ImageNet train||^2; ``csfid`` = the mean, over the target classes of the run's items, of
    ||mean over the edited images of class c - mean over ImageNet train images of class c||^2.
    The item's target class is ``meta["target_class"]``; ``csfid`` is nan when an item has none.
    Also reports ``sfid_items`` and ``csfid_classes``.

    ``means`` is the file written by ``python -m benchmarks.feature_means``; it records how its
    features were made, and must match this metric's extractor. ``feature`` injects one.
    """

    def __init__(
        self,
        means: str | None = None,
        weights: str | None = None,
        feature: nn.Module | None = None,
        antialias: bool = False,
        size: int = 256,
        batch_size: int = 32,
        device: str = "cpu",
        config_key: str = "metrics.corpus.sfid",
    ) -> None:
        off = f"~{config_key}"
        what = "SFID/CSFID need the mean Inception features of ImageNet train (computed once with `python -m benchmarks.feature_means --train-root /path/to/ILSVRC2012/train --out means.pt`)"
        if means is None:
            raise _unavailable(what + ", and", f"{config_key}.means is not set", f"{config_key}.means", off, "/path/to/means.pt")
        if not Path(means).expanduser().is_file():
            raise _unavailable(what + ", and", f"{means} is not a file", f"{config_key}.means", off, "/path/to/means.pt")
        self.means = load_feature_means(means)
        if feature is None:
            feature = load_inception(weights, antialias=antialias, key=f"{config_key}.weights", off=off)
            description = inception_description(antialias)
        else:
            description = f"custom {type(feature).__name__}"
        stored = self.means.get("meta", {}).get("extractor")
        if stored != description or self.means.get("meta", {}).get("size") != size:
            raise ValueError(
                f"The means file {means} holds features of '{stored}' at size {self.means.get('meta', {}).get('size')}, "
                f"but this metric uses '{description}' at size {size}; recompute the means with the same settings."
            )
        self.device = resolve_device(device)
        self.feature = feature.to(self.device).eval()
        self.size = size
        self.batch_size = batch_size

    def compute(self, pairs: Pairs) -> dict[str, float]:
        total: torch.Tensor | None = None
        count = 0
        class_sums: dict[int, torch.Tensor] = {}
        class_counts: dict[int, int] = {}
        every_item_has_class = True

        def tagged() -> Iterator[tuple[torch.Tensor, int | None]]:
            nonlocal every_item_has_class
            for item, edited in pairs:
                name = item.meta.get("target_class")
                every_item_has_class &= name is not None
                yield image_to_uint8(flexit_resize(edited, self.size)), None if name is None else imagenet_class_index(name)

        with torch.no_grad():
            for batch, labels in _batches(tagged(), self.batch_size):
                features = self.feature(batch.to(self.device)).double().cpu().reshape(len(labels), -1)
                total = features.sum(0) if total is None else total + features.sum(0)
                count += len(labels)
                for row, label in zip(features, labels):
                    if label is not None:
                        class_sums[label] = class_sums.get(label, 0) + row
                        class_counts[label] = class_counts.get(label, 0) + 1
        if count == 0:
            return {"sfid": math.nan, "csfid": math.nan, "sfid_items": 0.0, "csfid_classes": 0.0}
        sfid = float(((total / count) - self.means["mean"].double()).pow(2).sum())
        csfid = math.nan
        if every_item_has_class:
            distances = []
            for label, summed in class_sums.items():
                if int(self.means["class_counts"][label]) == 0:
                    raise ValueError(
                        f"The ImageNet means file has no images of class {_imagenet_names()[0][label]} "
                        f"({_imagenet_names()[1][label]}), a target class of this run."
                    )
                reference = self.means["class_means"][label].double()
                distances.append(((summed / class_counts[label]) - reference).pow(2).sum())
            csfid = float(torch.stack(distances).mean())
        else:
            log.warning("CSFID is undefined: some items have no meta['target_class'].")
        return {"sfid": sfid, "csfid": csfid, "sfid_items": float(count), "csfid_classes": float(len(class_sums))}
