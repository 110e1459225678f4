"""The diffusion steps every method shares, over any diffusers Stable Diffusion 1.x/2.x pipeline.

Methods compose these; none re-implements text encoding, VAE coding, noising, the guided
denoising step or latent blending.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import PIL.Image
import torch
from diffusers import StableDiffusionPipeline
from diffusers.utils.torch_utils import randn_tensor

from instdiffedit.graphs import unet_runner
from instdiffedit.resizing import to_working_size
from instdiffedit.schedulers import precompute, scheduler_class


@dataclass(frozen=True)
class DenoisingStep:
    """One finished step of a denoising loop, as handed to its ``after_step`` callback."""

    index: int
    timestep: torch.Tensor
    latents: torch.Tensor  # the scheduler's x_{t-1}
    noise_pred: torch.Tensor  # the guided noise estimate at t


AfterStep = Callable[[DenoisingStep], torch.Tensor]
"""Called after each scheduler step; returns the latents the loop goes on with."""


def blend_latents(edited: torch.Tensor, original: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Keep ``edited`` where ``mask`` is 1 and ``original`` where it is 0 (mask broadcasts).

    The result keeps the latents' dtype: a float32 mask must not turn fp16 latents into float32
    ones, which the fp16 UNet's next call would reject.
    """
    mask = mask.to(edited.dtype)
    return mask * edited + (1 - mask) * original


class LatentDiffusion:
    """Shared diffusion steps bound to one pipeline and one scheduler instance.

    The scheduler is built from the pipeline's own noise schedule (``from_config``), so the
    betas always match the model; its class is a choice of the method (LMS in the paper).
    The scheduler is stateful (LMS keeps past derivatives): call :meth:`timesteps` at the start
    of every denoising run. Every UNet call goes through the UNet's runner, in the model's fast
    path (:mod:`instdiffedit.graphs`).
    """

    def __init__(
        self,
        pipe: StableDiffusionPipeline,
        *,
        scheduler: str = "LMSDiscreteScheduler",
        resolution: int | None = None,
    ) -> None:
        scheduler_cls = scheduler_class(scheduler)
        self.pipe = pipe
        self.unet = pipe.unet
        self.runner = unet_runner(pipe.unet)
        self.vae = pipe.vae
        self.tokenizer = pipe.tokenizer
        self.scheduler = scheduler_cls.from_config(pipe.scheduler.config)
        self.resolution = resolution or pipe.unet.config.sample_size * pipe.vae_scale_factor
        if self.resolution % pipe.vae_scale_factor:
            raise ValueError(f"resolution={self.resolution} is not a multiple of the VAE factor {pipe.vae_scale_factor}.")
        self._text_cache: dict[str, torch.Tensor] = {}
        self._start_index: int | None = None

    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    @property
    def latent_size(self) -> tuple[int, int]:
        side = self.resolution // self.pipe.vae_scale_factor
        return side, side

    # -- text -------------------------------------------------------------------------------

    def text_embeddings(self, prompt: str) -> torch.Tensor:
        """The text encoder's hidden states for ``prompt`` (1 x 77 x D), cached per prompt."""
        if prompt not in self._text_cache:
            embeds, _ = self.pipe.encode_prompt(prompt, self.device, 1, False)
            self._text_cache[prompt] = embeds.to(self.dtype)
        return self._text_cache[prompt]

    def guidance_embeddings(self, prompts: list[str]) -> torch.Tensor:
        """Rows ``[uncond x N | cond_1 .. cond_N]`` for one classifier-free-guided UNet call."""
        uncond = self.text_embeddings("").expand(len(prompts), -1, -1)
        cond = torch.cat([self.text_embeddings(p) for p in prompts])
        return torch.cat([uncond, cond])

    # -- pixels <-> latents ---------------------------------------------------------------

    def preprocess(self, image: PIL.Image.Image | Sequence[PIL.Image.Image]) -> torch.Tensor:
        """RGB image(s) -> N x 3 x R x R in [-1, 1] on the device.

        Resized without cropping with PIL's bicubic, as the authors' code (and the inpainting
        input, :func:`to_working_size`); the image processor then only scales the pixels.
        """
        images = [image] if isinstance(image, PIL.Image.Image) else list(image)
        rgb = [to_working_size(im, self.resolution) for im in images]
        pixels = self.pipe.image_processor.preprocess(rgb if len(rgb) > 1 else rgb[0], height=self.resolution, width=self.resolution)
        return pixels.to(self.device, self.dtype)

    @torch.no_grad()
    def encode(self, image: PIL.Image.Image | Sequence[PIL.Image.Image]) -> torch.Tensor:
        """z0 = VAE mode(image) x scaling factor, one row per image, in one VAE call.

        The mode (not a sample) keeps z0 deterministic.
        """
        latents = self.vae.encode(self.preprocess(image)).latent_dist.mode()
        return latents * self.vae.config.scaling_factor

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> list[PIL.Image.Image]:
        pixels = self.vae.decode(latents / self.vae.config.scaling_factor).sample
        return self.pipe.image_processor.postprocess(pixels, output_type="pil")

    # -- the noise schedule -------------------------------------------------------------------

    def timesteps(self, num_inference_steps: int, strength: float) -> torch.Tensor:
        """Reset the scheduler and return the last ``strength`` share of its timesteps.

        ``int(num_inference_steps * strength)`` steps are run, as the authors' code and diffusers'
        img2img count them (strength 0.5 of 50 starts 25 steps before the end; 0.35 runs 17).
        """
        if not 0 < strength <= 1:
            raise ValueError(f"strength must be in (0, 1], got {strength}.")
        steps = min(int(num_inference_steps * strength), num_inference_steps)
        if steps == 0:
            raise ValueError(f"strength={strength} of {num_inference_steps} steps runs no step; raise strength or num_inference_steps.")
        self.scheduler.set_timesteps(num_inference_steps, device=self.device)
        skipped = num_inference_steps - steps
        self._start_index = skipped * self.scheduler.order
        timesteps = self.scheduler.timesteps[self._start_index :]
        precompute(self.scheduler, timesteps)
        return timesteps

    def _begin(self, timesteps: torch.Tensor) -> None:
        """Tell the scheduler where the loop starts, so its first step needs no timestep look-up.

        Without it, the first ``scale_model_input`` finds its step index with ``nonzero()`` on
        the device: a host sync. Set only once the loop starts, because schedulers with a begin
        index noise every timestep at that index in ``add_noise`` (the trajectory is computed before).
        """
        start = self._start_index
        if start is not None and hasattr(self.scheduler, "set_begin_index") and len(timesteps) == len(self.scheduler.timesteps) - start:
            self.scheduler.set_begin_index(start)

    def noise(self, shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
        """Gaussian latents; a CPU generator gives the same numbers on every device."""
        return randn_tensor(shape, generator=generator, device=self.device, dtype=self.dtype)

    def add_noise(self, z0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """z0 noised to timestep ``t`` with ``noise`` (z0 broadcasts over the noise batch)."""
        return self.scheduler.add_noise(z0.expand_as(noise), noise, t.reshape(1))

    def noised_trajectory(
        self, z0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor, at: Literal["t", "t-1"] = "t"
    ) -> list[torch.Tensor]:
        """The re-noised original for every step, computed before the loop.

        Entry ``i`` is z0 noised to ``timesteps[i]`` (``at="t"``) or to the step's target
        timestep (``at="t-1"``: the next timestep, and z0 itself after the last step).
        Precomputing keeps the scheduler's timestep look-ups (host syncs) out of the loop.
        """
        if at == "t":
            return [self.add_noise(z0, noise, t) for t in timesteps]
        if at == "t-1":
            return [self.add_noise(z0, noise, t) for t in timesteps[1:]] + [z0.expand_as(noise)]
        raise ValueError(f"at must be 't' or 't-1', got {at!r}.")

    def noise_estimate(self, model_output: torch.Tensor, sample: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The noise estimate at timestep ``t`` from the model's output for the step that began at ``sample``.

        An epsilon model's output is returned as it is. A v-prediction output is converted with
        the schedule's alpha-bar a_t: eps = sqrt(a_t) v + sqrt(1 - a_t) x_t, where x_t is the
        variance-preserving sample the UNet saw (schedulers that work in sigma space, whose
        ``init_noise_sigma`` is not 1, hand it sample / sqrt(sigma_t^2 + 1) = sample sqrt(a_t)).
        Looks the timestep up on the host: call it after a loop, not inside one.
        """
        prediction = self.scheduler.config.prediction_type
        if prediction == "epsilon":
            return model_output
        if prediction != "v_prediction":
            raise ValueError(f"No noise estimate from {prediction!r} model outputs; expected 'epsilon' or 'v_prediction'.")
        scheduler = self.scheduler
        if scheduler.init_noise_sigma != 1.0:  # sigma space: a_t = 1 / (sigma_t^2 + 1)
            sigma = scheduler.sigmas[scheduler.index_for_timestep(t)].to(sample.device, torch.float32)
            alpha_bar = 1 / (sigma**2 + 1)
            sample = sample * alpha_bar.sqrt()
        else:
            alpha_bar = scheduler.alphas_cumprod[int(t)].to(sample.device, torch.float32)
        return alpha_bar.sqrt() * model_output + (1 - alpha_bar).sqrt() * sample

    # -- denoising --------------------------------------------------------------------------

    def guided_noise(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        embeddings: torch.Tensor,
        guidance_scale: float,
        max_rows: int | None = None,
        conditioning: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The classifier-free-guided noise estimate for every row of ``x`` (already scaled by
        the scheduler's ``scale_model_input``) at the device timestep ``t``.

        ``embeddings`` is ``[uncond | cond]`` (two rows per latent row, see
        :meth:`guidance_embeddings`). Each UNet call takes ``[x | x]`` for a chunk of latent
        rows, at most ``max_rows`` UNet rows at a time (default: all rows in one call).
        ``conditioning`` (one row per latent row) is concatenated to the UNet's input channels
        after the latents, as the SD-inpainting UNet takes its mask and masked-image latents.
        """
        rows = x.shape[0]
        uncond, cond = embeddings[:rows], embeddings[rows:]
        chunk = rows if max_rows is None else max(1, max_rows // 2)
        estimates = []
        for start in range(0, rows, chunk):
            part = slice(start, start + chunk)
            model_input = torch.cat([x[part], x[part]])
            if conditioning is not None:
                model_input = torch.cat([model_input, conditioning[part].repeat(2, 1, 1, 1)], dim=1)
            context = torch.cat([uncond[part], cond[part]])
            eps_uncond, eps_cond = self.runner(model_input, t, context).chunk(2)
            estimates.append(eps_uncond + guidance_scale * (eps_cond - eps_uncond))
        return torch.cat(estimates)

    @torch.no_grad()
    def denoise(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        embeddings: torch.Tensor,
        guidance_scale: float,
        after_step: AfterStep | None = None,
        max_rows: int | None = None,
        conditioning: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run the guided denoising loop over ``timesteps``; ``after_step`` may edit each result.

        The UNet takes each timestep as a device tensor; the scheduler takes it as a Python
        number, read from the device once before the loop: schedulers that index their
        host-side tables by the timestep (PNDM, DDIM) would otherwise wait for the device at
        every step.
        """
        self._begin(timesteps)
        for i, (t, t_host) in enumerate(zip(timesteps, timesteps.tolist(), strict=True)):
            eps = self.guided_noise(self.scheduler.scale_model_input(x, t_host), t, embeddings, guidance_scale, max_rows, conditioning)
            x = self.scheduler.step(eps, t_host, x).prev_sample
            if after_step is not None:
                x = after_step(DenoisingStep(i, t, x, eps))
        return x
