"""Instruction-tuned editors as methods: FLUX.1 Kontext [dev] and Qwen-Image-Edit, through diffusers' pipelines.

Both models take the input image and an editing instruction ("Replace the cat with a dog") and
generate the edited image: no mask, no inversion, no caption. They run only inside their own
pipelines (``FluxKontextPipeline``, ``QwenImageEditPipeline``), each the whole model of its
family (``flux_kontext``, ``qwen_image_edit``: :data:`instdiffedit.backbones.PIPELINE_FAMILIES`),
at the settings their authors publish.

The instruction is the split's own where it ships one (PIE-Bench's ``editing_instruction``,
passed as ``instruction=``), else :func:`edit_instruction` writes it from the edit texts.

Resolution: the input is resized to a square working image at the model's native size (1024 px
for both; the tiny test models' 64 px), edited at that size and resized back to the input, as
every method here. For the square images of every split this is what the pipelines do by
default: FLUX.1 Kontext picks 1024 x 1024 among its preferred resolutions for a square input,
and Qwen-Image-Edit scales its condition image to a 1024 x 1024 area. Qwen-Image-Edit's
pipeline keeps that condition size (the vision-language encoder's and the VAE's view of the
input) whatever the working size; FLUX.1 Kontext takes the input at the working size.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import PIL.Image
import torch
from diffusers import FluxKontextPipeline, QwenImageEditPipeline

from instdiffedit.accounting import PhaseTimer, count_denoiser_evals
from instdiffedit.backbones import check_family, family_of
from instdiffedit.registry import register_method
from instdiffedit.resizing import to_input_size, to_working_size
from instdiffedit.types import Capabilities, EditResult


def edit_instruction(target: str, source: str | None) -> str:
    """The editing instruction written from an item's edit texts, for splits that ship none.

    With a source, "Replace <source> with <target>" ("Replace a blue circle with a red square");
    without one (an addition, or a split that names only what the image should show), "Make the
    image show <target>". The texts are used as the split gives them (articles included),
    without trailing punctuation.
    """
    target = target.strip().rstrip(".")
    if source is None or not source.strip():
        return f"Make the image show {target}"
    return f"Replace {source.strip().rstrip('.')} with {target}"


class InstructionEditor(ABC):
    """Edit with an instruction-tuned model's own pipeline, at a square working resolution.

    A subclass declares its family in ``capabilities`` and implements :meth:`generate`; it checks
    its own settings before calling ``__init__``, the first to touch the model.

    Args:
        pipe: the model's pipeline (its family's, see ``capabilities.families``).
        resolution: working side in pixels; None: the model's native size (the pipeline's
            default image side). A multiple of twice the VAE's downsampling (latents are packed
            2 x 2 into tokens).
    """

    capabilities: ClassVar[Capabilities]

    def __init__(self, pipe: FluxKontextPipeline | QwenImageEditPipeline, resolution: int | None) -> None:
        if resolution is not None and resolution < 1:
            raise ValueError(f"resolution must be positive (or null: the model's native size), got {resolution}.")
        check_family(type(self), family_of(pipe))
        self.pipeline = pipe
        self.resolution = resolution or pipe.default_sample_size * pipe.vae_scale_factor
        multiple = 2 * pipe.vae_scale_factor
        if self.resolution % multiple:
            raise ValueError(f"{type(self).__name__} needs a resolution that is a multiple of {multiple}, got {self.resolution}.")

    @abstractmethod
    def generate(self, image: PIL.Image.Image, instruction: str, generator: torch.Generator | None) -> PIL.Image.Image:
        """The pipeline's edit of the working-size ``image`` by ``instruction``, at the working size."""

    def edit(
        self,
        image: PIL.Image.Image,
        *,
        target: str,
        source: str | None = None,
        prompt: str | None = None,
        mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        instruction: str | None = None,
    ) -> EditResult:
        """Edit ``image`` by ``instruction`` (None: :func:`edit_instruction` of ``target`` and
        ``source``). ``prompt`` and ``mask`` are not used; the result has no mask."""
        text = instruction or edit_instruction(target, source)
        transformer = self.pipeline.transformer
        timer = PhaseTimer(transformer.device)
        with count_denoiser_evals(transformer) as counter, timer.phase("total"), timer.phase("edit"):
            edited = self.generate(to_working_size(image, self.resolution), text, generator)
            edited, _, _ = to_input_size(image, edited)
        return EditResult(edited, timings=timer.timings, denoiser_evals=counter.count)


def _check_steps(num_inference_steps: int) -> None:
    if num_inference_steps < 1:
        raise ValueError(f"num_inference_steps must be at least 1, got {num_inference_steps}.")


@register_method("kontext", role="baseline", rank=6, quick=("method.num_inference_steps=4",))
class FluxKontext(InstructionEditor):
    """FLUX.1 Kontext [dev] (Black Forest Labs, arXiv 2506.15742): the input image's tokens beside
    the generated ones in a FLUX.1 transformer, guidance-distilled (one denoiser call per step).

    Args (defaults: the pipeline's and its documented example's):
        pipe: a ``FluxKontextPipeline``.
        inpaint_pipe: accepted so every method is built alike; unused.
        num_inference_steps: flow-matching Euler steps (28, the pipeline's default).
        guidance_scale: the embedded guidance (2.5, as diffusers' and Black Forest Labs'
            examples for FLUX.1 Kontext [dev]; the pipeline's signature says 3.5).
        max_sequence_length: T5 tokens of the instruction (512).
        resolution: see :class:`InstructionEditor`.
    """

    capabilities = Capabilities(families=frozenset({"flux_kontext"}), instructions=True)

    def __init__(
        self,
        pipe: FluxKontextPipeline,
        inpaint_pipe: None = None,
        *,
        num_inference_steps: int = 28,
        guidance_scale: float = 2.5,
        max_sequence_length: int = 512,
        resolution: int | None = None,
    ) -> None:
        _check_steps(num_inference_steps)
        if not 1 <= max_sequence_length <= 512:
            raise ValueError(f"max_sequence_length must be between 1 and 512 (T5's), got {max_sequence_length}.")
        super().__init__(pipe, resolution)
        self.num_inference_steps = num_inference_steps
        self.guidance_scale = guidance_scale
        self.max_sequence_length = max_sequence_length

    def generate(self, image: PIL.Image.Image, instruction: str, generator: torch.Generator | None) -> PIL.Image.Image:
        side = self.resolution
        return self.pipeline(
            image=image,
            prompt=instruction,
            num_inference_steps=self.num_inference_steps,
            guidance_scale=self.guidance_scale,
            height=side,
            width=side,
            max_area=side * side,
            _auto_resize=False,  # the image is already at the working size (see the module's docstring)
            max_sequence_length=self.max_sequence_length,
            generator=generator,
        ).images[0]


@register_method("qwen_image_edit", role="baseline", rank=7, quick=("method.num_inference_steps=4",))
class QwenImageEdit(InstructionEditor):
    """Qwen-Image-Edit (Qwen, arXiv 2508.02324): Qwen-Image's 20B MMDiT conditioned on the input
    image's VAE latents and on Qwen2.5-VL's reading of the image and the instruction, with
    classifier-free guidance against a negative prompt (two denoiser calls per step).

    Args (defaults: the pipeline's and the model card's):
        pipe: a ``QwenImageEditPipeline``.
        inpaint_pipe: accepted so every method is built alike; unused.
        num_inference_steps: flow-matching Euler steps (50).
        true_cfg_scale: classifier-free guidance scale (4.0).
        negative_prompt: the unconditional text (" ", the model card's); null turns the
            guidance off (one call per step).
        resolution: see :class:`InstructionEditor`.
    """

    capabilities = Capabilities(families=frozenset({"qwen_image_edit"}), instructions=True)

    def __init__(
        self,
        pipe: QwenImageEditPipeline,
        inpaint_pipe: None = None,
        *,
        num_inference_steps: int = 50,
        true_cfg_scale: float = 4.0,
        negative_prompt: str | None = " ",
        resolution: int | None = None,
    ) -> None:
        _check_steps(num_inference_steps)
        if true_cfg_scale < 1:
            raise ValueError(f"true_cfg_scale must be at least 1 (1: no guidance), got {true_cfg_scale}.")
        super().__init__(pipe, resolution)
        self.num_inference_steps = num_inference_steps
        self.true_cfg_scale = true_cfg_scale
        self.negative_prompt = negative_prompt

    def generate(self, image: PIL.Image.Image, instruction: str, generator: torch.Generator | None) -> PIL.Image.Image:
        side = self.resolution
        return self.pipeline(
            image=image,
            prompt=instruction,
            negative_prompt=self.negative_prompt,
            true_cfg_scale=self.true_cfg_scale,
            num_inference_steps=self.num_inference_steps,
            height=side,
            width=side,
            generator=generator,
        ).images[0]
