"""Small stand-ins for the weights-backed parts of metrics, shared by the tests.

Real weights cannot be downloaded here: tests inject these through the metrics' own
constructor arguments (never through a user-facing switch).
"""

from __future__ import annotations

import weakref
from typing import Any, ClassVar

import numpy as np
import PIL.Image
import torch
from torch import nn


def non_square_scene() -> PIL.Image.Image:
    """96 wide x 80 high (a red disc on a gradient), so results must be resized back from a square working size."""
    yy, xx = np.mgrid[0:80, 0:96]
    pixels = np.stack([xx / 96, yy / 80, np.full_like(xx, 0.5, dtype=float)], axis=-1) * 255
    pixels[(yy - 40) ** 2 + (xx - 48) ** 2 < 20**2] = (220, 30, 30)
    return PIL.Image.fromarray(pixels.astype(np.uint8))


class ChannelMeans(nn.Module):
    """A feature extractor with known outputs: each image's mean (0..255) per channel."""

    num_features = 3

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        assert images.dtype == torch.uint8
        return images.float().mean(dim=(2, 3))


class RecordingDistance(nn.Module):
    """An LPIPS stand-in: returns a fixed distance and keeps its inputs."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value
        self.inputs: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        self.inputs.append((a, b))
        return torch.full((a.shape[0], 1, 1, 1), self.value)


def tiny_clip(seed: int = 0):
    """A random CLIPModel small enough for a CPU test, and a processor with the real CLIP tokenizer."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from benchmarks.models.tiny import clip_tokenizer

    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=dict(vocab_size=49408, hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=77),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8),
        projection_dim=16,
    )
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return CLIPModel(config).eval(), CLIPProcessor(image_processor=images, tokenizer=clip_tokenizer())


def tiny_classifier(seed: int = 0) -> nn.Module:
    """A random 1000-way image classifier (pool, linear) in place of DeiT."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, 1000)).eval()


TINY_CLASSIFIER_DATA = {"input_size": (3, 32, 32), "interpolation": "bicubic", "crop_pct": 1.0}


def random_lpips(net: str = "alex", seed: int = 0) -> nn.Module:
    """LPIPS with a random ``net`` trunk (its linear layers are the package's own)."""
    import lpips

    torch.manual_seed(seed)
    return lpips.LPIPS(net=net, pnet_rand=True, verbose=False).eval()


def paper_metrics() -> dict[str, Any]:
    """The per-item metrics of ``metrics=paper`` (``conf/metrics/paper.yaml``), every model a small random one."""
    from benchmarks.metrics.per_item import (
        BackgroundPreservation,
        ChangingRate,
        CLIPScore,
        EditAccuracy,
        LPIPSDistance,
        MaskIoU,
    )

    alexnet = random_lpips("alex")
    clip_model, clip_processor = tiny_clip()
    return {
        "mask_iou": MaskIoU(),
        "changing_rate": ChangingRate(),
        "background": BackgroundPreservation(lpips=True, lpips_model=alexnet),
        "lpips": LPIPSDistance(model=alexnet),
        "clip_score": CLIPScore(model=clip_model, processor=clip_processor),
        "accuracy": EditAccuracy(model=tiny_classifier(), data_config=TINY_CLASSIFIER_DATA),
    }


def tiny_dino(seed: int = 0) -> nn.Module:
    """A random ViT of the DINO ViT-B/8 layout (timm's, fused qkv, CLS token) small enough for a CPU test: 2 blocks."""
    import timm

    torch.manual_seed(seed)
    return timm.create_model(
        "vit_base_patch8_224",
        pretrained=False,
        num_classes=0,
        embed_dim=24,
        depth=2,
        num_heads=2,
        patch_size=16,
        dynamic_img_size=True,
    ).eval()


class HostSyncs(torch.overrides.TorchFunctionMode):
    """Records, while ``armed``, the calls that make the host wait for a CUDA device.

    On a CPU nothing waits, so the calls themselves are caught: reading values (``item``,
    ``tolist``, ``bool``/``int``/``float`` of a tensor, ``numpy``), copies to the host
    (``cpu``), data-dependent shapes (``nonzero``, boolean-mask indexing), indexing with a 0-d
    integer tensor (an ``item`` in disguise) or with a Python list (a host-to-device copy), and
    tensors built from Python data. ``raise_on_sync`` turns a record into an error.

    Tensors that stay on the host on a GPU too (:meth:`host_resident`: a scheduler's tables that
    diffusers keeps on the CPU on purpose), and every tensor computed from them alone, are read
    without waiting for the device, so reading them is no sync.
    """

    READS: ClassVar[set[str]] = {
        "item",
        "tolist",
        "cpu",
        "numpy",
        "__bool__",
        "__int__",
        "__float__",
        "__index__",
        "nonzero",
        "argwhere",
        "tensor",
        "as_tensor",
    }

    def __init__(self, armed: bool = False, raise_on_sync: bool = False) -> None:
        super().__init__()
        self.armed = armed
        self.raise_on_sync = raise_on_sync
        self.calls: list[str] = []
        self._host: dict[int, weakref.ref] = {}

    def host_resident(self, *tensors: torch.Tensor) -> None:
        """Declare ``tensors`` host-resident (see the class)."""
        for tensor in tensors:
            self._host[id(tensor)] = weakref.ref(tensor)

    def _on_host(self, value: object) -> bool:
        ref = self._host.get(id(value))
        return ref is not None and ref() is value

    def __torch_function__(self, func, types, args=(), kwargs=None):
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        from_host = bool(tensors) and all(self._on_host(t) for t in tensors)
        if self.armed and not from_host and (why := self._sync(func, args)):
            if self.raise_on_sync:
                raise RuntimeError(f"host sync: {why}")
            self.calls.append(why)
        result = func(*args, **(kwargs or {}))
        if from_host and isinstance(result, torch.Tensor):
            self.host_resident(result)
        return result

    def _sync(self, func, args) -> str | None:
        name = getattr(func, "__name__", "")
        if name in self.READS:
            return name
        if name in ("__getitem__", "__setitem__") and len(args) > 1:
            for index in args[1] if isinstance(args[1], tuple) else (args[1],):
                if isinstance(index, list):
                    return f"{name} with a list index"
                if isinstance(index, torch.Tensor) and (index.dtype == torch.bool or (index.ndim == 0 and not index.is_floating_point())):
                    return f"{name} with a {'boolean' if index.dtype == torch.bool else '0-d integer'} tensor index"
        return None


class PlainGraph:
    """A stand-in for a captured CUDA graph: ``replay()`` runs the forward again on the static
    inputs and copies the result into the same ``output`` tensor, as a replay overwrites it."""

    def __init__(self, forward) -> None:
        self.forward = forward
        self.output = forward()
        self.replays = 0

    def replay(self) -> None:
        self.output.copy_(self.forward())
        self.replays += 1


class PlainGraphs:
    """A :class:`instdiffedit.fast_paths.Capturer` for CPUs: the capture step replaced by plain calls.

    Capturing runs the forward with host syncs forbidden, as a CUDA stream capture does.
    """

    def __init__(self) -> None:
        self.graphs: list[PlainGraph] = []
        self.warmups = 0

    def capture(self, forward, warmups) -> PlainGraph:
        for warmup in warmups:
            warmup()
            self.warmups += 1
        with HostSyncs(armed=True, raise_on_sync=True):
            graph = PlainGraph(forward)
        self.graphs.append(graph)
        return graph
