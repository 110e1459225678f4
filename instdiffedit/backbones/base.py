"""The backbone interface: what differs between model families, under one set of diffusion steps.

A :class:`Backbone` wraps one diffusers pipeline and owns everything that differs between
families: prompt encoding and the extra conditioning (pooled embeddings, SDXL's size ids,
FLUX.1's embedded guidance), the VAE's scaling and shift, the noise schedule (epsilon / v
diffusion or flow matching, see :mod:`instdiffedit.backbones.schedules`), classifier-free
guidance or guidance distillation, the denoiser's call (FLUX.1 packs latents into tokens inside
it: methods only ever see B x C x h x w latents), where the text-image attention lives and how
to capture it, the text's token columns and the inpainting twin's inputs.

The shared steps every method composes are written once, here: text guidance for a batch
(cached per prompt), VAE encode/decode, noising to a timestep, the guided prediction, the
denoising loop with a per-step callback, latent blending. Every denoiser call goes through the
model's runner, in the model's fast path (:mod:`instdiffedit.fast_paths`), and nothing inside a
loop waits for the device.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol

import PIL.Image
import torch
from diffusers import DiffusionPipeline
from diffusers.utils.torch_utils import randn_tensor

from instdiffedit.backbones.schedules import NoiseSchedule
from instdiffedit.fast_paths import Forward, denoiser_runner
from instdiffedit.joint_attention import Normaliser
from instdiffedit.registry import declared
from instdiffedit.resizing import to_working_size
from instdiffedit.token_references import Reference, TextPart, text_layout
from instdiffedit.tokens import TokenLayout

Family = Literal["sd", "sdxl", "sd3", "flux", "flux_kontext", "qwen_image_edit"]
FAMILY_NAMES: dict[str, str] = {
    "sd": "SD 1.x/2.x",
    "sdxl": "SDXL",
    "sd3": "SD 3.x",
    "flux": "FLUX.1",
    "flux_kontext": "FLUX.1 Kontext",
    "qwen_image_edit": "Qwen-Image-Edit",
}
ALL_FAMILIES: frozenset[str] = frozenset(FAMILY_NAMES)

Guidance = Literal["cfg", "embedded", "none"]
"""How the text guides the denoiser: classifier-free guidance (two rows per latent), a guidance
scale the model takes as an input (FLUX.1 [dev]: one row), or none (FLUX.1 [schnell])."""


@dataclass(frozen=True)
class TextGuidance:
    """The denoiser's text inputs for a batch of latent rows, and how they guide it.

    ``cond`` holds, one row per latent row, every input the family's forward takes after the
    latents and the timestep (the text embeddings first; FLUX.1 [dev]'s guidance scale last);
    ``uncond`` the unconditional inputs of classifier-free guidance, or None without it;
    ``scale`` the classifier-free guidance scale: one number, or one per latent row
    (``rows x 1 x 1 x 1``, where guidances of several scales share a denoiser call: :meth:`stack`).
    """

    cond: tuple[torch.Tensor, ...]
    uncond: tuple[torch.Tensor, ...] | None
    scale: float | torch.Tensor

    @property
    def rows_per_latent(self) -> int:
        """Denoiser rows per latent row: 2 with classifier-free guidance, else 1."""
        return 1 if self.uncond is None else 2

    @property
    def rows(self) -> int:
        return self.cond[0].shape[0]

    def scale_of(self, rows: slice) -> float | torch.Tensor:
        """The guidance scale of latent ``rows``."""
        return self.scale if isinstance(self.scale, float | int) else self.scale[rows]

    @staticmethod
    def stack(*guidances: TextGuidance) -> TextGuidance:
        """One guidance for the rows of all ``guidances`` in order, each row keeping its own text and
        scale, so that one denoiser call serves them all (FLUX.1 [dev]'s embedded scales are per-row inputs already)."""
        cond = tuple(torch.cat(rows) for rows in zip(*(g.cond for g in guidances), strict=True))
        uncond = None
        if guidances[0].uncond is not None:
            uncond = tuple(torch.cat(rows) for rows in zip(*(g.uncond for g in guidances), strict=True))
        # In the text states' dtype (the model's), so that the guided prediction keeps the model's dtype as with one
        # float scale: float32 scales would promote a half-precision prediction, and the latents after it, to float32.
        scale = torch.cat([torch.as_tensor(g.scale, dtype=cond[0].dtype, device=cond[0].device).expand(g.rows) for g in guidances])
        return TextGuidance(cond, uncond, scale.view(-1, 1, 1, 1))


@dataclass(frozen=True)
class AttentionOptions:
    """Where a backbone reads its text-image attention; each backbone takes the options of its kind.

    ``downsample``: UNet cross-attention at latent / this (SD 1.x/2.x, SDXL; default, the level
    closest to the paper's 16 x 16, :func:`~instdiffedit.attention.default_downsample`).
    ``layers``: indices of the joint-attention layers (SD 3.x, FLUX.1; default, all, see
    :func:`~instdiffedit.joint_attention.joint_attention_layers`). ``normaliser``: the exact
    joint-attention probabilities (``"all_keys"``) or renormalised over the text keys.
    """

    downsample: int | None = None
    layers: tuple[int, ...] | None = None
    normaliser: Normaliser = "all_keys"


class AttentionStore(Protocol):
    """A capture's maps: ``take()`` is the latest denoiser call's ``R x h x w x L`` text attention of its conditional rows."""

    def take(self) -> torch.Tensor: ...


@dataclass(frozen=True)
class DenoisingStep:
    """One finished step of a denoising loop, as handed to its ``after_step`` callback."""

    index: int
    timestep: torch.Tensor
    latents: torch.Tensor  # the scheduler's x_{t-1}
    prediction: torch.Tensor  # the guided model prediction at t (noise or velocity)


AfterStep = Callable[[DenoisingStep], torch.Tensor]
"""Called after each scheduler step; returns the latents the loop goes on with."""

Predict = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]
"""``predict(step index, latents as the denoiser takes them, device timestep)``: the prediction
(noise or velocity) the scheduler steps with."""


def blend_latents(edited: torch.Tensor, original: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Keep ``edited`` where ``mask`` is 1 and ``original`` where it is 0 (mask broadcasts).

    The result keeps the latents' dtype: a float32 mask must not turn fp16 latents into float32
    ones, which the fp16 denoiser's next call would reject.
    """
    mask = mask.to(edited.dtype)
    return mask * edited + (1 - mask) * original


class Backbone(ABC):
    """The shared diffusion steps over one pipeline of a model family.

    Args:
        pipe: the family's diffusers pipeline (base or inpainting twin).
        scheduler: the diffusers scheduler class of the denoising loops, built on the model's own
            schedule (default: the family's, :attr:`default_scheduler`). Stateful: call
            :meth:`timesteps` at the start of every denoising run.
        resolution: the square working side in pixels (default: the model's native one).
    """

    family: ClassVar[Family]
    schedule_kind: ClassVar[type[NoiseSchedule]]
    """The family's kind of noise schedule (diffusion or flow matching)."""
    default_scheduler: ClassVar[str]
    default_reference: ClassVar[Reference]
    """The start-token reference InstDiffEdit inverts (see :mod:`instdiffedit.token_references`)."""
    latent_multiple: ClassVar[int] = 1
    """The latent side must be a multiple of this (2 where the denoiser takes 2 x 2 latent patches)."""
    forward: ClassVar[Forward]
    """``forward(denoiser, sample, timestep, *text inputs)``, bound to the denoiser's runner."""
    denoiser_name: ClassVar[str]
    """The pipeline's attribute holding the denoiser: ``"unet"`` or ``"transformer"``."""
    shifts_latents: ClassVar[bool] = False
    """Whether the family's pipelines subtract the VAE's ``shift_factor`` before scaling (SD 3.x and
    FLUX.1's do; SD 1.x/2.x and SDXL's scale only, whatever the VAE's config holds)."""

    def __init__(self, pipe: DiffusionPipeline, *, scheduler: str | None = None, resolution: int | None = None) -> None:
        self.schedule_kind.scheduler_class(scheduler or self.default_scheduler)  # a wrong name fails before the model is touched
        self.pipe = pipe
        self.denoiser: torch.nn.Module = getattr(pipe, self.denoiser_name)
        self.vae = pipe.vae
        self.vae_scale_factor: int = pipe.vae_scale_factor
        self.resolution = resolution or self.native_resolution()
        side = self.vae_scale_factor * self.latent_multiple
        if self.resolution % side:
            raise ValueError(f"resolution={self.resolution} is not a multiple of {side} (the VAE factor x the denoiser's patch side).")
        self.schedule: NoiseSchedule = self._schedule(scheduler or self.default_scheduler)
        self.runner = denoiser_runner(self.denoiser)
        self.runner.bind(type(self).forward)
        self._text_cache: dict[str, tuple[torch.Tensor, ...]] = {}

    # -- what each family declares ---------------------------------------------------------

    @abstractmethod
    def native_resolution(self) -> int:
        """The model's native image side in pixels."""

    @abstractmethod
    def _schedule(self, scheduler: str) -> NoiseSchedule: ...

    @abstractmethod
    def _encode_text(self, prompt: str) -> tuple[torch.Tensor, ...]:
        """The denoiser's text inputs for ``prompt``, one row each, in the forward's order."""

    @abstractmethod
    def text_parts(self) -> tuple[TextPart, ...]:
        """The encoders' token columns in the denoiser's text sequence (see :mod:`instdiffedit.token_references`)."""

    @abstractmethod
    def check_attention(self, options: AttentionOptions) -> None:
        """A ValueError naming the option if ``options`` do not apply to this family's attention."""

    @abstractmethod
    def capture_text_attention(self, options: AttentionOptions, columns: int | None = None) -> AbstractContextManager[AttentionStore]:
        """While open, each denoiser call's text attention at the family's map grid (conditional rows only).

        ``columns``: the maps must hold at least the first ``columns`` text columns (None: all); a
        family whose capture costs per column keeps only those (their values unchanged).
        """

    @property
    def guidance(self) -> Guidance:
        return "cfg"

    @property
    def twin_in_channels(self) -> int | None:
        """The input channels of this family's inpainting twin, or None where the family has none."""
        return None

    def inpainting_inputs(self, pixels: torch.Tensor, repaint: torch.Tensor, generators: Sequence[torch.Generator | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """For the inpainting twin: the start latents and the extra input channels (after the latents)
        for images ``pixels`` (K x 3 x R x R) and binary masks ``repaint`` (K x 1 x R x R, 1 = repaint)."""
        raise ValueError(f"The {FAMILY_NAMES[self.family]} family has no inpainting twin; inpaint by latent blending with the base model.")

    # -- sizes and devices --------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.denoiser.device

    @property
    def dtype(self) -> torch.dtype:
        return self.denoiser.dtype

    @property
    def latent_size(self) -> tuple[int, int]:
        side = self.resolution // self.vae_scale_factor
        return side, side

    @property
    def latent_channels(self) -> int:
        return self.vae.config.latent_channels

    @property
    def pipeline_guidance_scale(self) -> float:
        """The guidance scale the pipeline uses by default (its ``__call__``'s): SD 7.5, SDXL 5,
        SDXL inpainting 7.5, SD 3.x 7, FLUX.1 [dev] 3.5, FLUX.1 Fill 30."""
        return inspect.signature(type(self.pipe).__call__).parameters["guidance_scale"].default

    # -- text ---------------------------------------------------------------------------------

    def text(self, prompt: str) -> tuple[torch.Tensor, ...]:
        """The denoiser's text inputs for ``prompt`` (one row each, the denoiser's dtype), cached per prompt."""
        if prompt not in self._text_cache:
            self._text_cache[prompt] = tuple(t.to(self.dtype) for t in self._encode_text(prompt))
        return self._text_cache[prompt]

    def unconditional_text(self) -> tuple[torch.Tensor, ...]:
        """The unconditional inputs of classifier-free guidance: those the family's pipeline uses
        without a negative prompt (the empty text's)."""
        return self.text("")

    def embedded_guidance(self, rows: int, scale: float) -> tuple[torch.Tensor, ...]:
        """Inputs after the text inputs that carry the guidance scale (FLUX.1 [dev]); none by default."""
        return ()

    def text_guidance(self, prompts: Sequence[str], scale: float) -> TextGuidance:
        """The inputs that guide latent row i towards ``prompts[i]`` with guidance ``scale``."""
        cond = tuple(torch.cat(rows) for rows in zip(*(self.text(p) for p in prompts), strict=True))
        cond += self.embedded_guidance(len(prompts), scale)
        uncond = None
        if self.guidance == "cfg":
            uncond = tuple(t.expand(len(prompts), *t.shape[1:]) for t in self.unconditional_text())
        return TextGuidance(cond, uncond, scale)

    def token_layout(self, text: str, reference: Reference | None = None, words_from: str = "all") -> TokenLayout:
        """The columns of ``text``'s words, end token and start-token ``reference`` (default: the family's)."""
        return text_layout(self.text_parts(), text, reference or self.default_reference, words_from)

    # -- pixels <-> latents -------------------------------------------------------------------

    def preprocess(self, image: PIL.Image.Image | Sequence[PIL.Image.Image]) -> torch.Tensor:
        """RGB image(s) -> N x 3 x R x R in [-1, 1] on the device, in the VAE's dtype.

        Resized without cropping with PIL's bicubic, as the authors' code (and the inpainting
        input, :func:`to_working_size`); the image processor then only scales the pixels.
        """
        images = [image] if isinstance(image, PIL.Image.Image) else list(image)
        rgb = [to_working_size(im, self.resolution) for im in images]
        pixels = self.pipe.image_processor.preprocess(rgb if len(rgb) > 1 else rgb[0], height=self.resolution, width=self.resolution)
        return pixels.to(self.device, self.vae.dtype)

    def _to_latents(self, vae_latents: torch.Tensor) -> torch.Tensor:
        """VAE latents -> the denoiser's: (z - shift) x scale (the shift where the family uses one), in the denoiser's dtype."""
        shift = self.vae.config.shift_factor if self.shifts_latents else None
        if shift:
            vae_latents = vae_latents - shift
        return (vae_latents * self.vae.config.scaling_factor).to(self.dtype)

    @torch.no_grad()
    def encode(self, image: PIL.Image.Image | Sequence[PIL.Image.Image]) -> torch.Tensor:
        """z0 of each image from the VAE's mode (deterministic), one row per image, in one VAE call."""
        return self._to_latents(self.vae.encode(self.preprocess(image)).latent_dist.mode())

    @torch.no_grad()
    def sample_latents(self, pixels: torch.Tensor, generators: Sequence[torch.Generator | None]) -> torch.Tensor:
        """Latents sampled from the VAE posterior of ``pixels``, one draw from each row's generator
        (as diffusers' inpainting pipelines encode their masked images)."""
        posterior = self.vae.encode(pixels).latent_dist
        shape = (1, *posterior.mean.shape[1:])
        draws = torch.cat([randn_tensor(shape, generator=g, device=self.device, dtype=posterior.mean.dtype) for g in generators])
        return self._to_latents(posterior.mean + posterior.std * draws)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> list[PIL.Image.Image]:
        latents = latents / self.vae.config.scaling_factor
        shift = self.vae.config.shift_factor if self.shifts_latents else None
        if shift:
            latents = latents + shift
        pixels = self.vae.decode(latents.to(self.vae.dtype)).sample
        return self.pipe.image_processor.postprocess(pixels, output_type="pil")

    # -- the noise schedule -------------------------------------------------------------------

    def timesteps(self, num_inference_steps: int, strength: float) -> torch.Tensor:
        """Reset the scheduler and return the last ``strength`` share of its timesteps.

        ``int(num_inference_steps * strength)`` steps are run on every backbone, as the authors'
        code and diffusers' SD img2img count them (strength 0.5 of 50 starts 25 steps before the
        end; 0.35 runs 17).
        """
        if not 0 < strength <= 1:
            raise ValueError(f"strength must be in (0, 1], got {strength}.")
        steps = min(int(num_inference_steps * strength), num_inference_steps)
        if steps == 0:
            raise ValueError(f"strength={strength} of {num_inference_steps} steps runs no step; raise strength or num_inference_steps.")
        return self.last_timesteps(num_inference_steps, steps)

    def last_timesteps(self, num_inference_steps: int, steps: int) -> torch.Tensor:
        """Reset the scheduler for ``num_inference_steps`` and return its last ``steps`` timesteps
        (for methods that count steps, not a strength: FlowEdit's ``n_max``)."""
        if not 0 < steps <= num_inference_steps:
            raise ValueError(f"Cannot run the last {steps} of {num_inference_steps} steps; need 1 <= steps <= num_inference_steps.")
        return self.schedule.timesteps(num_inference_steps, steps, self.device)

    def noise(self, shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
        """Gaussian latents; a CPU generator gives the same numbers on every device."""
        return randn_tensor(shape, generator=generator, device=self.device, dtype=self.dtype)

    def add_noise(self, z0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """z0 noised with ``noise`` to timestep ``t``, one for every row or one per row (z0 broadcasts over the noise batch)."""
        return self.schedule.add_noise(z0, noise, t)

    def noised_trajectory(self, z0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor, at: Literal["t", "t-1"] = "t") -> list[torch.Tensor]:
        """The re-noised original for every step, computed before the loop.

        Entry ``i`` is z0 noised to ``timesteps[i]`` (``at="t"``) or to the step's target
        timestep (``at="t-1"``: the next timestep, and z0 itself after the last step).
        Precomputing keeps the scheduler's timestep look-ups (host syncs) out of the loop; all
        timesteps go through one ``add_noise`` call (each row's arithmetic is the same as alone),
        which pays the scheduler's host work and table copies once instead of once per step.
        """
        if at not in ("t", "t-1"):
            raise ValueError(f"at must be 't' or 't-1', got {at!r}.")
        targets = timesteps if at == "t" else timesteps[1:]
        rows = noise.shape[0]
        trajectory: list[torch.Tensor] = []
        if len(targets):
            repeats = (len(targets),) + (1,) * (noise.dim() - 1)
            noised = self.add_noise(z0.expand_as(noise).repeat(repeats), noise.repeat(repeats), targets.repeat_interleave(rows))
            trajectory = list(noised.split(rows))
        return trajectory + ([z0.expand_as(noise)] if at == "t-1" else [])

    def noise_estimate(self, prediction: torch.Tensor, sample: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The noise estimate at ``t`` from a (guided) prediction for the step that began at ``sample``
        (see :meth:`NoiseSchedule.noise_estimate`); a host look-up: call it after a loop."""
        return self.schedule.noise_estimate(prediction, sample, t)

    # -- denoising ----------------------------------------------------------------------------

    def guided_prediction(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        guidance: TextGuidance,
        max_rows: int | None = None,
        channels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The guided model prediction (noise or velocity) for every row of ``x`` (already the
        schedule's model input) at the device timestep ``t``.

        With classifier-free guidance each denoiser call takes ``[x | x]`` for a chunk of latent
        rows with ``[uncond | cond]`` text; without, ``x`` with its text. At most ``max_rows``
        denoiser rows go into one call (default: all rows in one call). ``channels`` (one row per
        latent row) are concatenated to the denoiser's input channels after the latents, as the
        inpainting twins take their mask and masked-image latents.
        """
        rows = x.shape[0]
        chunk = rows if max_rows is None else max(1, max_rows // guidance.rows_per_latent)
        predictions = []
        for start in range(0, rows, chunk):
            part = slice(start, start + chunk)
            model_input = x[part] if channels is None else torch.cat([x[part], channels[part]], dim=1)
            cond = tuple(tensor[part] for tensor in guidance.cond)
            if guidance.uncond is None:
                predictions.append(self.runner(model_input, t, *cond))
                continue
            text = (torch.cat([u[part], c]) for u, c in zip(guidance.uncond, cond, strict=True))
            uncond_out, cond_out = self.runner(torch.cat([model_input, model_input]), t, *text).chunk(2)
            scale = guidance.scale_of(part)
            predictions.append(uncond_out + scale * (cond_out - uncond_out))
        return torch.cat(predictions)

    @torch.no_grad()
    def denoise(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        guidance: TextGuidance,
        after_step: AfterStep | None = None,
        max_rows: int | None = None,
        channels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run the guided denoising loop over ``timesteps``; ``after_step`` may edit each result."""

        def guided(index: int, model_input: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.guided_prediction(model_input, t, guidance, max_rows, channels)

        return self.sample_loop(x, timesteps, guided, after_step)

    @torch.no_grad()
    def sample_loop(self, x: torch.Tensor, timesteps: torch.Tensor, predict: Predict, after_step: AfterStep | None = None) -> torch.Tensor:
        """The sampler's loop over ``timesteps``, stepping with whatever ``predict`` returns.

        :meth:`denoise` predicts with the guided model; methods whose step direction is another
        combination of model predictions (FlowEdit's velocity difference) give their own.
        The denoiser takes each timestep as a device tensor; the scheduler takes it as a Python
        number, read from the device once before the loop: schedulers that index their
        host-side tables by the timestep (PNDM, DDIM) would otherwise wait for the device at
        every step.
        """
        self.schedule.begin(timesteps)
        for i, (t, t_host) in enumerate(zip(timesteps, timesteps.tolist(), strict=True)):
            prediction = predict(i, self.schedule.model_input(x, t_host), t)
            x = self.schedule.step(prediction, t_host, x)
            if after_step is not None:
                x = after_step(DenoisingStep(i, t, x, prediction))
        return x


BACKBONES: dict[type[DiffusionPipeline], type[Backbone]] = {}
"""The backbone of each pipeline class (subclasses of a class take its backbone), as each backbone
class declares it with :func:`register_backbone`."""


def register_backbone(*pipelines: type[DiffusionPipeline], name: str) -> Callable[[type[Backbone]], type[Backbone]]:
    """Class decorator: the backbone class runs its ``family`` (shown as ``name``) over ``pipelines``.

    A new family (for example a subclass of :class:`StableDiffusion` with another ``family`` over
    a subclass of its pipeline) then works wherever the built-in ones do: :func:`backbone_for`,
    :func:`check_family` and the methods that list the family in their ``capabilities.families``.
    """
    if not pipelines:
        raise ValueError(f"register_backbone({name!r}) needs the pipeline classes the backbone runs over.")

    def register(backbone: type[Backbone]) -> type[Backbone]:
        if FAMILY_NAMES.get(backbone.family, name) != name:
            raise ValueError(f"The family {backbone.family!r} is already {FAMILY_NAMES[backbone.family]!r}, not {name!r}.")
        for pipeline in pipelines:
            if BACKBONES.get(pipeline, backbone) is not backbone:
                raise ValueError(f"{pipeline.__name__} already runs on {BACKBONES[pipeline].__name__}; subclass it for {backbone.__name__}.")
        FAMILY_NAMES[backbone.family] = name
        BACKBONES.update(dict.fromkeys(pipelines, backbone))
        return declared(backbone)

    return register
