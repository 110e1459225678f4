"""The models the speed benchmark times: built from ``--arch`` (random weights), ``--base`` (real
weights) or ``--model`` (a config of ``conf/model``, as ``run.py model=<name>`` builds it).
"""

from __future__ import annotations

from pathlib import Path

import torch

from benchmarks.models.family_architectures import ARCHITECTURES
from benchmarks.models.loading import Pipelines, load_pretrained
from instdiffedit.backbones import BACKBONE_FAMILIES, backbone_for, denoiser_of, family_of

CONF = Path(__file__).resolve().parents[3] / "conf"
TINY_FAMILIES = {"tiny_sdxl": "sdxl", "tiny_sd3": "sd3", "tiny_flux": "flux", "tiny_kontext": "flux_kontext", "tiny_qwen_image_edit": "qwen_image_edit"}
ARCH_FAMILIES = {"sd14": "sd", "tiny": "sd", **TINY_FAMILIES, **{name: arch.family for name, arch in ARCHITECTURES.items()}}
"""Every ``--arch`` and its model family."""
BACKBONE_ARCHS = (*ARCHITECTURES, *TINY_FAMILIES)
"""The archs of the backbone table (their runs' folders side by side), in its order."""


def build_pipelines(arch: str, device: torch.device, dtype: torch.dtype, base: str | None, inpaint: str | None) -> Pipelines:
    if base is not None:
        return load_pretrained(base, inpaint, device=str(device), dtype={torch.float16: "float16", torch.float32: "float32", torch.bfloat16: "bfloat16"}[dtype])
    if arch in ARCHITECTURES:
        return ARCHITECTURES[arch].build(device, dtype, 0)
    if arch in TINY_FAMILIES:
        from benchmarks.models.families import finish_pipeline
        from benchmarks.models.tiny_families import tiny_family_pipelines

        pipes = tiny_family_pipelines(TINY_FAMILIES[arch], device=str(device), fast_path="eager")
        for pipe in denoised_pipelines(pipes):
            finish_pipeline(pipe.to(device, dtype), dtype, pipes.resolution)
        return pipes
    if arch == "tiny":
        from benchmarks.models.tiny import build_tiny_pipelines

        pipes = Pipelines(*build_tiny_pipelines())
        for pipe in (pipes.base, pipes.inpaint):
            pipe.to(device, dtype)
        return pipes
    from benchmarks.models.sd_architecture import build_sd14_pipelines

    return build_sd14_pipelines(device, dtype)


def model_family(name: str) -> str:
    """The family ``conf/model/<name>.yaml`` declares; an error naming the choices for an unknown name."""
    from omegaconf import OmegaConf

    path = CONF / "model" / f"{name}.yaml"
    if not path.is_file():
        raise SystemExit(f"error: unknown --model {name!r}; choose from {', '.join(sorted(p.stem for p in path.parent.glob('*.yaml')))}.")
    return OmegaConf.load(path).family


def model_pipelines(name: str, device: torch.device, dtype: str) -> Pipelines:
    """The model of ``conf/model/<name>.yaml``, built as ``run.py model=<name>`` builds it, but eager and
    without channels_last (the benchmark applies each mode itself); ``dtype`` other than ``auto`` replaces
    the config's precision."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    overrides = [f"model={name}", f"device={device}", "model.fast_path=eager", "model.channels_last=false"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        model = compose(config_name="config", overrides=overrides).model
    if dtype != "auto":
        if "dtype" not in model:
            raise SystemExit(f"error: model={name} has no dtype to set (its weights' precision is fixed); leave out --dtype.")
        model.dtype = dtype
    return instantiate(model)


def denoised_pipelines(pipes: Pipelines) -> list:
    """The base pipeline and the inpainting twin, where there is one."""
    return [pipe for pipe in (pipes.base, pipes.inpaint) if pipe is not None]


def denoisers(pipes: Pipelines) -> list[torch.nn.Module]:
    """The pipelines' UNets or transformers, each once."""
    return list(dict.fromkeys(denoiser_of(pipe) for pipe in denoised_pipelines(pipes)))


def benchmark_input(pipes: Pipelines):
    """One synthetic item at the model's native resolution: a shape to turn into another, with its exact mask (for the oracle)."""
    from benchmarks.data.synthetic import SyntheticDataset

    return SyntheticDataset(n=1, size=resolution(pipes), seed=0).load("synthetic-00000")


def resolution(pipes: Pipelines) -> int:
    """The model's native image side in pixels, as its backbone reads it (the family's own for a model without one)."""
    return pipes.resolution if family_of(pipes.base) not in BACKBONE_FAMILIES else backbone_for(pipes.base).resolution


def arch_dtype(name: str, arch: str, device: torch.device) -> torch.dtype:
    """``auto``: float32 off CUDA; on CUDA the precision the arch's weights are published in (float16 for SD 1.x)."""
    if name != "auto":
        return getattr(torch, name)
    if device.type != "cuda":
        return torch.float32
    return ARCHITECTURES[arch].dtype if arch in ARCHITECTURES else torch.float16
