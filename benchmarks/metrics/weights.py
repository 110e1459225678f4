"""Loading the weights of model-backed metrics, once, before any editing starts.

Each loader takes a local copy (the metric's ``weights`` config key) when given, else the
library's normal source: the torch hub cache or download (LPIPS trunks, the FID Inception), the
Hugging Face cache or hub (CLIP, timm classifiers; see :mod:`benchmarks.hub`). When the weights
cannot be had it raises :class:`MetricUnavailableError`, whose one-sentence message names the
weights, the config key for a local copy and how to turn the metric off.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmarks.hub import NotOnHub, cached_file, cached_or_downloaded


class MetricUnavailableError(RuntimeError):
    """A metric's weights could neither be found locally nor downloaded; the message says how to fix it."""


def unavailable(what: str, reason: str, key: str, off: str | None, local: str = "/path/to/local/copy") -> MetricUnavailableError:
    """One sentence: what is needed, why it is missing, the setting for a local copy, how to turn the metric off."""
    fix = f"set {key}={local}" + (f" or turn the metric off with {off}" if off else "")
    return MetricUnavailableError(f"{what} {reason}; {fix}.")


def _short(error: BaseException) -> str:
    """The first line of an error, for a clause inside a one-sentence message."""
    text = str(getattr(error, "reason", None) or error).strip().splitlines()
    return (text[0] if text else type(error).__name__).rstrip(".")


def _not_in_torch_hub(error: BaseException) -> str:
    """Why torch hub weights are missing: not in its cache, and the download's failure."""
    return f"are not in the torch hub cache ({torch.hub.get_dir()}) and could not be downloaded ({_short(error)})"


_LPIPS_TRUNKS = {"alex": ("AlexNet", "alexnet-owt-7be5be79.pth"), "squeeze": ("SqueezeNet 1.1", "squeezenet1_1-b8a52dc0.pth")}
"""LPIPS trunks: torchvision's ImageNet network and its weight file name in the torch hub cache."""


def load_lpips(weights: str | None = None, *, net: str = "alex", key: str = "metrics.lpips.weights", off: str = "~metrics.lpips") -> nn.Module:
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
                raise unavailable(what + "which", _not_in_torch_hub(error), key, off, f"/path/to/{file}") from None
        path = Path(weights).expanduser()
        if not path.is_file():
            raise unavailable(what + "and", f"{path} is not a file", key, off, f"/path/to/{file}")
        model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    # lpips splits the trunk's `features` into slices that keep the torchvision child names.
    for name, parameter in model.net.named_parameters():
        source = "features." + name.split(".", 1)[1]
        if source not in state:
            raise unavailable(what + "and", f"{path} is not a torchvision {trunk} state dict (no {source})", key, off, f"/path/to/{file}")
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
        raise unavailable(
            f"The FID Inception v3 needs torch-fidelity's weights ({_INCEPTION_FILE}), and",
            f"{weights} is not a file",
            key,
            off,
            f"/path/to/{_INCEPTION_FILE}",
        )
    try:
        net = NoTrainInceptionV3(
            name="inception-v3-compat",
            features_list=["2048"],
            feature_extractor_weights_path=None if weights is None else str(Path(weights).expanduser()),
            antialias=antialias,
        )
    except (OSError, RuntimeError) as error:
        raise unavailable(
            f"The FID Inception v3 needs torch-fidelity's weights ({_INCEPTION_FILE}), which",
            _not_in_torch_hub(error),
            key,
            off,
            f"/path/to/{_INCEPTION_FILE}",
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
            raise unavailable(
                what + ", and",
                f"{folder} is not a folder with a CLIPModel and CLIPProcessor saved by save_pretrained",
                key,
                off,
                "/path/to/clip/folder",
            ) from None
    try:
        return cached_or_downloaded(lambda local: load(model_name, local_files_only=local))
    except NotOnHub as missing:
        raise unavailable(what + ", which is", missing.reason, key, off, "/path/to/clip/folder") from None


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

    what = what or f"EditAccuracy needs the ImageNet weights of timm's {model_name!r}"
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise unavailable(what + ", and", f"{path} is not a file", key, off, "/path/to/weights.safetensors")
        return timm.create_model(model_name, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **create_kwargs).eval()
    pretrained_cfg = timm.models.get_pretrained_cfg(model_name)
    if pretrained_cfg is None:
        raise ValueError(f"timm has no pretrained model named {model_name!r}.")
    hub_id = pretrained_cfg.hf_hub_id

    def load(local: bool) -> nn.Module:
        if not local:
            return timm.create_model(model_name, pretrained=True, **create_kwargs).eval()
        files = (cached_file(hub_id, name) for name in ("model.safetensors", "pytorch_model.bin")) if hub_id else ()
        cached = next((path for path in files if path is not None), None)
        if cached is None:
            raise OSError(f"{model_name} is not in the local Hugging Face cache")
        return timm.create_model(model_name, pretrained=True, pretrained_cfg_overlay={"file": cached}, **create_kwargs).eval()

    try:
        return cached_or_downloaded(load, errors=(OSError, RuntimeError))
    except NotOnHub as missing:
        raise unavailable(what + ", which are", missing.reason, key, off, "/path/to/weights.safetensors") from None
