"""Noise schedules: how a backbone noises latents, steps the sampler and reads a noise estimate.

Two kinds cover the families:

- :class:`DiffusionSchedule` (SD 1.x/2.x, SDXL): a diffusers scheduler of the variance-preserving
  diffusion (LMS in the paper, DDIM, PNDM, Euler, ...) whose model predicts the noise
  (``epsilon``) or the velocity (``v_prediction``); noising is ``add_noise``.
- :class:`FlowMatchingSchedule` (SD 3.x, FLUX.1): rectified flow, ``x_t = (1 - s) x_0 + s e``
  with the model predicting the velocity ``e - x_0``; an Euler step is ``x + (s_next - s) v``
  (diffusers' ``FlowMatchEulerDiscreteScheduler``, whose ``sigmas`` are the ``s``).

A schedule holds one stateful scheduler instance: call :meth:`NoiseSchedule.timesteps` at the
start of every denoising run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch
from diffusers import EulerDiscreteScheduler, FlowMatchEulerDiscreteScheduler, FlowMatchHeunDiscreteScheduler, LMSDiscreteScheduler
from diffusers.pipelines.flux.pipeline_flux import calculate_shift

from instdiffedit.lms_coefficients import precompute, scheduler_class

_FLOW_MATCHING = (FlowMatchEulerDiscreteScheduler, FlowMatchHeunDiscreteScheduler)
_SIGMA_SPACE = (LMSDiscreteScheduler, EulerDiscreteScheduler)
"""Schedulers whose ``add_noise`` is z0 + sigma e with sigmas indexed by timestep."""


class NoiseSchedule(ABC):
    """The operations of the shared denoising loop over one scheduler instance."""

    def __init__(self, scheduler: object) -> None:
        self.scheduler = scheduler
        self._start_index: int | None = None

    @classmethod
    @abstractmethod
    def scheduler_class(cls, name: str) -> type:
        """The diffusers scheduler class ``name`` if it runs this kind of schedule, else a ValueError naming the kind."""

    def timesteps(self, num_inference_steps: int, steps: int, device: torch.device) -> torch.Tensor:
        """Reset the scheduler for ``num_inference_steps`` and return its last ``steps`` timesteps (on ``device``)."""
        self._set_timesteps(num_inference_steps, device)
        self._start_index = (num_inference_steps - steps) * self.scheduler.order
        timesteps = self.scheduler.timesteps[self._start_index :]
        precompute(self.scheduler, timesteps)
        return timesteps

    def begin(self, timesteps: torch.Tensor) -> None:
        """Tell the scheduler where the loop starts, so its first step needs no timestep look-up.

        Without it, the first step finds its index with ``nonzero()`` on the device: a host sync.
        Set only once the loop starts, because schedulers with a begin index noise every timestep
        at that index (the trajectory is computed before).
        """
        start = self._start_index
        if start is not None and hasattr(self.scheduler, "set_begin_index") and len(timesteps) == len(self.scheduler.timesteps) - start:
            self.scheduler.set_begin_index(start)

    def model_input(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """The latents as the denoiser takes them at host timestep ``t``."""
        return x

    def step(self, prediction: torch.Tensor, t: float, x: torch.Tensor) -> torch.Tensor:
        """One sampler step from ``x`` at host timestep ``t`` with the (guided) model prediction."""
        return self.scheduler.step(prediction, t, x).prev_sample

    @abstractmethod
    def _set_timesteps(self, num_inference_steps: int, device: torch.device) -> None: ...

    @abstractmethod
    def add_noise(self, z0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """z0 noised with ``noise`` to timestep ``t``: one timestep for every row, or one per row
        (z0 broadcasts over the noise batch)."""

    def _sigmas_at(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """The scheduler's sigma of each timestep in ``t`` (one per row of ``like``, broadcastable to it), found on the device.

        diffusers' schedulers that index their sigmas by timestep look each row's index up with
        ``nonzero()`` and ``item()`` (two host syncs a row); one comparison with the whole
        schedule finds them all on the device. Their timesteps are distinct, so the first match
        is the one diffusers takes.
        """
        schedule = self.scheduler.timesteps.to(like.device)
        indices = (schedule[None, :] == t.to(like.device).reshape(-1, 1)).int().argmax(dim=1)
        sigma = self.scheduler.sigmas.to(device=like.device, dtype=like.dtype)[indices]
        return sigma.view(-1, *([1] * (like.dim() - 1)))

    @abstractmethod
    def start_latents(self, noise: torch.Tensor) -> torch.Tensor:
        """The latents a full schedule (strength 1) starts from, for Gaussian ``noise``."""

    @abstractmethod
    def noise_estimate(self, prediction: torch.Tensor, sample: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The noise estimate at timestep ``t`` from the model's prediction for the step that began at ``sample``.

        Looks the timestep up on the host: call it after a loop, not inside one.
        """


class DiffusionSchedule(NoiseSchedule):
    """A variance-preserving diffusion scheduler (``scheduler`` names its diffusers class), on the model's betas.

    The scheduler is built from the pipeline's own noise schedule (``from_config``), so the betas
    always match the model; its class is a choice of the method (LMS in the paper).
    """

    def __init__(self, name: str, config: dict) -> None:
        super().__init__(self.scheduler_class(name).from_config(config))

    @classmethod
    def scheduler_class(cls, name: str) -> type:
        scheduler = scheduler_class(name)
        if issubclass(scheduler, _FLOW_MATCHING):
            raise ValueError(
                f"scheduler={name!r} is a flow-matching scheduler, but this model is a diffusion model (epsilon or v); choose e.g. LMSDiscreteScheduler."
            )  # noqa: TRY004 (a config value)
        return scheduler

    def _set_timesteps(self, num_inference_steps: int, device: torch.device) -> None:
        self.scheduler.set_timesteps(num_inference_steps, device=device)

    def model_input(self, x: torch.Tensor, t: float) -> torch.Tensor:
        return self.scheduler.scale_model_input(x, t)

    def add_noise(self, z0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """diffusers' ``add_noise``; for the schedulers in sigma space (LMS, Euler) its arithmetic with the
        sigmas found on the device (schedulers in alpha space index their tables on the device already)."""
        z0 = z0.expand_as(noise)
        if isinstance(self.scheduler, _SIGMA_SPACE):
            return z0 + noise * self._sigmas_at(t, z0)
        return self.scheduler.add_noise(z0, noise, t.reshape(-1))

    def start_latents(self, noise: torch.Tensor) -> torch.Tensor:
        return noise * self.scheduler.init_noise_sigma

    def noise_estimate(self, prediction: torch.Tensor, sample: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """An epsilon model's output as it is; a v-prediction converted with the schedule's alpha-bar a_t:
        eps = sqrt(a_t) v + sqrt(1 - a_t) x_t, where x_t is the variance-preserving sample the model
        saw (schedulers that work in sigma space, whose ``init_noise_sigma`` is not 1, hand it
        sample / sqrt(sigma_t^2 + 1) = sample sqrt(a_t))."""
        kind = self.scheduler.config.prediction_type
        if kind == "epsilon":
            return prediction
        if kind != "v_prediction":
            raise ValueError(f"No noise estimate from {kind!r} model outputs; expected 'epsilon' or 'v_prediction'.")
        scheduler = self.scheduler
        if scheduler.init_noise_sigma != 1.0:  # sigma space: a_t = 1 / (sigma_t^2 + 1)
            sigma = scheduler.sigmas[scheduler.index_for_timestep(t)].to(sample.device, torch.float32)
            alpha_bar = 1 / (sigma**2 + 1)
            sample = sample * alpha_bar.sqrt()
        else:
            alpha_bar = scheduler.alphas_cumprod[int(t)].to(sample.device, torch.float32)
        return alpha_bar.sqrt() * prediction + (1 - alpha_bar).sqrt() * sample


class FlowMatchingSchedule(NoiseSchedule):
    """Rectified flow with diffusers' flow-matching Euler scheduler, set up as the family's pipeline does.

    ``image_tokens`` (the denoiser's image sequence length) gives the resolution-dependent shift
    ``mu`` of schedulers with ``use_dynamic_shifting`` (FLUX.1); ``linear_sigmas`` passes the
    sigmas 1 .. 1/n as FLUX.1's pipelines do (SD 3.x's let the scheduler space them).
    """

    def __init__(self, name: str, config: dict, *, image_tokens: int, linear_sigmas: bool = False) -> None:
        super().__init__(self.scheduler_class(name).from_config(config))
        self.image_tokens = image_tokens
        self.linear_sigmas = linear_sigmas

    @classmethod
    def scheduler_class(cls, name: str) -> type:
        scheduler = scheduler_class(name)
        if not issubclass(scheduler, FlowMatchEulerDiscreteScheduler):
            raise ValueError(f"scheduler={name!r} cannot run flow matching; this model needs FlowMatchEulerDiscreteScheduler.")  # noqa: TRY004 (a config value)
        return scheduler

    def _set_timesteps(self, num_inference_steps: int, device: torch.device) -> None:
        options: dict = {}
        if self.linear_sigmas:
            options["sigmas"] = np.linspace(1.0, 1 / num_inference_steps, num_inference_steps)
        config = self.scheduler.config
        if config.get("use_dynamic_shifting"):
            options["mu"] = calculate_shift(
                self.image_tokens,
                config.get("base_image_seq_len", 256),
                config.get("max_image_seq_len", 4096),
                config.get("base_shift", 0.5),
                config.get("max_shift", 1.15),
            )
        self.scheduler.set_timesteps(num_inference_steps, device=device, **options)

    def add_noise(self, z0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The scheduler's ``scale_noise`` arithmetic, (1 - s) z0 + s e, with the sigmas found on the device."""
        z0 = z0.expand_as(noise)
        sigma = self._sigmas_at(t, z0)
        return sigma * noise + (1.0 - sigma) * z0

    def start_latents(self, noise: torch.Tensor) -> torch.Tensor:
        """The noise itself: a full schedule starts at sigma 1."""
        return noise

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """The sigma of timestep ``t`` (a host look-up: outside loops)."""
        return self.scheduler.sigmas[self.scheduler.index_for_timestep(t)]

    def noise_estimate(self, prediction: torch.Tensor, sample: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """From the velocity v = e - x_0 at x_t = (1 - s) x_0 + s e: e = x_t + (1 - s) v."""
        sigma = self.sigma(t).to(sample.device, torch.float32)
        return sample + (1 - sigma) * prediction
