"""Noise schedules: how a backbone noises latents, steps the sampler and reads a noise estimate.

:class:`DiffusionSchedule` (SD 1.x/2.x): a diffusers scheduler of the variance-preserving
diffusion (LMS in the paper, DDIM, PNDM, Euler, ...) whose model predicts the noise
(``epsilon``) or the velocity (``v_prediction``); noising is ``add_noise``.

A schedule holds one stateful scheduler instance: call :meth:`NoiseSchedule.timesteps` at the
start of every denoising run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from instdiffedit.schedulers import precompute, scheduler_class


class NoiseSchedule(ABC):
    """The operations of the shared denoising loop over one scheduler instance."""

    def __init__(self, scheduler: object) -> None:
        self.scheduler = scheduler
        self._start_index: int | None = None

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
        """z0 noised to timestep ``t`` with ``noise`` (z0 broadcasts over the noise batch)."""

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
        super().__init__(scheduler_class(name).from_config(config))

    def _set_timesteps(self, num_inference_steps: int, device: torch.device) -> None:
        self.scheduler.set_timesteps(num_inference_steps, device=device)

    def model_input(self, x: torch.Tensor, t: float) -> torch.Tensor:
        return self.scheduler.scale_model_input(x, t)

    def add_noise(self, z0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.scheduler.add_noise(z0.expand_as(noise), noise, t.reshape(1))

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
