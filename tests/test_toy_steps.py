"""The toy training's steps: what a CUDA graph captures is the step run eagerly here, and it is capturable.

A graph captured on the GPU replays the kernels of one call; it cannot hold a host sync (reading
a tensor's value), a tensor made from host values, or Python-side state that changes between
steps. These tests run every model's step on the CPU and check those properties of it (host
syncs: tests/fakes.HostSyncs).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from diffusers import DDPMScheduler
from diffusers.training_utils import EMAModel, compute_snr
from fakes import HostSyncs
from torch import nn

from benchmarks.models.tiny import SD14_SCHEDULER_CONFIG, clip_tokenizer
from benchmarks.toy.captions import CaptionTokenizer
from benchmarks.toy.render import render, sample_layouts
from benchmarks.toy.training.config import TrainConfig
from benchmarks.toy.training.denoisers import (
    denoiser_inputs,
    denoiser_trainers,
    min_snr_weights,
    twin_from,
    twin_trainer,
)
from benchmarks.toy.training.nets import build_text_encoder, build_unet
from benchmarks.toy.training.steps import EMA, LearningRate, Trainer, TrainingStep, warmup_cosine
from benchmarks.toy.training.train import (
    set_latent_statistics,
    text_encoder_trainer,
    vae_trainer,
)

TINY = replace(
    TrainConfig(),
    batch_size=4,
    dit_batch_size=2,
    text_hidden=32,
    text_layers=2,
    text_projection=16,
    vae_channels=(8, 16, 16),
    unet_channels=(8, 16, 32),
    dit_layers=2,
    dit_heads=2,
    dit_head_dim=8,
)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def batch() -> dict[str, torch.Tensor]:
    layout = sample_layouts(TINY.batch_size, torch.Generator().manual_seed(0))
    images, masks = render(layout)
    return {"images": images, "masks": masks, "ids": torch.randint(0, 49406, (TINY.batch_size, 77))}


@pytest.fixture(scope="module")
def trainers(batch) -> list[tuple[Trainer, dict[str, torch.Tensor]]]:
    torch.manual_seed(0)
    text = text_encoder_trainer(TINY, CPU)
    vae = vae_trainer(TINY, CPU)
    set_latent_statistics(vae.module, batch["images"])
    encoder = text.module.eval()

    @torch.no_grad()
    def states(ids: torch.Tensor) -> dict[str, torch.Tensor]:
        output = encoder(ids, output_hidden_states=True)
        return {"context": output.last_hidden_state, "penultimate": output.hidden_states[-2], "pooled": output.text_embeds}

    tokens = CaptionTokenizer(clip_tokenizer())
    denoisers = denoiser_trainers(TINY, vae.module.eval(), states, tokens, CPU)
    denoisers.append(twin_trainer(TINY, vae.module.eval(), states, tokens, CPU, base=denoisers[0].module))
    with torch.no_grad():
        prepared = {
            "latents": vae.module.encode(batch["images"] * 2 - 1).latent_dist.sample(),
            "images": batch["images"],
            "objects": batch["masks"],
            **states(batch["ids"]),
        }
    inputs = denoiser_inputs(TINY)
    return [
        (text, {"images": batch["images"], "ids": batch["ids"]}),
        (vae, {"images": batch["images"], "masks": batch["masks"]}),
        *((t, inputs[t.name](prepared)) for t in denoisers),
    ]


def test_every_model_s_loss_backward_clipping_and_ema_update_are_capturable(trainers) -> None:
    # The optimiser's update is left out: on the CPU AdamW reads its step count on the host; on the
    # GPU the training builds it capturable (fused), which is what that flag is for.
    for trainer, inputs in trainers:
        with HostSyncs(armed=True) as syncs:
            trainer.optimizer.zero_grad(set_to_none=True)
            trainer.loss_fn(inputs).backward()
            torch.nn.utils.clip_grad_norm_(trainer.params, 1.0, foreach=True)
            if trainer.ema is not None:
                trainer.ema.update()
        assert not syncs.calls, f"{trainer.name}: {sorted(set(syncs.calls))}"


def test_on_the_cpu_the_step_the_graph_would_capture_runs_as_is() -> None:
    calls = []

    def fn(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        calls.append(inputs["x"])
        return inputs["x"].sum()

    step = TrainingStep(fn, graphed=False)
    x = torch.ones(3)
    assert step({"x": x}) == 3 and calls == [x] and not step.captured


def test_every_trainer_steps_through_one_training_step_object(trainers) -> None:
    for trainer, inputs in trainers:
        assert isinstance(trainer.run, TrainingStep) and trainer.run.fn == trainer._step
        before = [p.detach().clone() for p in trainer.params]
        trainer.step(inputs)
        assert trainer.done == 1 and any(not torch.equal(b, p) for b, p in zip(before, trainer.params)), trainer.name


def test_the_ema_decay_follows_diffusers_ema_warm_up() -> None:
    params = [nn.Parameter(torch.zeros(2))]
    ema = EMA(params, decay=0.9995)
    reference = EMAModel(params, decay=0.9995, use_ema_warmup=True)
    for step in (0, 1, 10, 1000, 10**6):
        ema.set_step(step)
        assert ema.weight.item() == pytest.approx(1 - reference.get_decay(step + 1), abs=1e-7)


def test_the_ema_blends_parameters_in_by_its_weight() -> None:
    param = nn.Parameter(torch.zeros(2))
    ema = EMA([param], decay=0.5)
    with torch.no_grad():
        param.fill_(1.0)
    ema.set_step(10**6)
    ema.update()
    assert torch.allclose(ema.shadow[0], torch.full((2,), 0.5))


def test_a_tensor_learning_rate_is_updated_in_place_so_a_graph_sees_it() -> None:
    optimizer = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=torch.tensor(1.0))
    rate = optimizer.param_groups[0]["lr"]
    LearningRate(optimizer, 2e-3).set(0.5)
    assert optimizer.param_groups[0]["lr"] is rate and rate.item() == pytest.approx(1e-3)


def test_the_schedule_warms_up_then_decays_to_zero() -> None:
    assert warmup_cosine(0, 100, 10) == pytest.approx(0.1 * 0.5 * (1 + torch.cos(torch.tensor(0.0)).item()))
    assert warmup_cosine(9, 100, 10) > warmup_cosine(50, 100, 10) > warmup_cosine(99, 100, 10) > 0 == warmup_cosine(100, 100, 10)


def test_a_trainer_restored_from_its_state_takes_the_same_next_step(batch) -> None:
    def trainer() -> Trainer:
        torch.manual_seed(0)
        encoder = build_text_encoder(16, 1, 8)
        return Trainer(
            "text", encoder, lambda inputs: encoder(inputs["ids"]).text_embeds.pow(2).mean(), lr=1e-2, total=10, warmup=2, graphed=False, ema_decay=0.9
        )

    inputs = {"ids": batch["ids"]}
    first = trainer()
    for _ in range(3):
        first.step(inputs)
    second = trainer()
    second.load_state_dict(first.state_dict())
    first.step(inputs)
    second.step(inputs)
    assert second.done == first.done == 4
    assert all(torch.equal(a, b) for a, b in zip(first.params, second.params))
    assert all(torch.equal(a, b) for a, b in zip(first.ema.shadow, second.ema.shadow))


def test_min_snr_weights_are_diffusers_for_an_epsilon_model() -> None:
    scheduler = DDPMScheduler.from_config(SD14_SCHEDULER_CONFIG)
    t = torch.tensor([0, 10, 250, 500, 999])
    snr = compute_snr(scheduler, t)
    expected = torch.stack([snr, 5.0 * torch.ones_like(snr)], dim=1).min(dim=1)[0] / snr  # train_text_to_image.py
    assert torch.allclose(min_snr_weights(scheduler.alphas_cumprod, t, 5.0), expected)


def test_the_twin_fine_tuned_from_the_unet_starts_as_the_unet() -> None:
    # SD-inpainting's recipe: the base UNet's weights, the mask and masked-image channels with zero weights.
    torch.manual_seed(0)
    base = build_unet(TINY.unet_channels, TINY.unet_layers_per_block, TINY.text_hidden).eval()
    twin = twin_from(base, TINY).eval()
    x, condition = torch.randn(2, 4, 16, 16), torch.randn(2, 5, 16, 16)
    context, t = torch.randn(2, 77, TINY.text_hidden), torch.tensor([10, 900])
    with torch.no_grad():
        assert torch.equal(twin(torch.cat([x, condition], 1), t, encoder_hidden_states=context).sample, base(x, t, encoder_hidden_states=context).sample)
    assert twin.config.in_channels == 9


def test_the_default_recipe_fine_tunes_the_twin_after_the_unet_and_scratch_trains_it_beside() -> None:
    assert TrainConfig().twin_init == "base"
    with pytest.raises(ValueError, match="twin_init"):
        TrainConfig(twin_init="pretrained")
