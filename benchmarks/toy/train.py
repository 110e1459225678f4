"""Train the toy world's text-to-image model (and its object classifier) from scenes rendered on the fly.

    python -m benchmarks.toy.train --out models/toy

One reproducible command on one GPU: an ``AutoencoderKL`` (64 px -> 16 x 16 x 4), then a
``UNet2DConditionModel`` with a small causal ``CLIPTextModel`` (the real CLIP BPE tokenizer),
SD 1.x's noise schedule and caption dropout for classifier-free guidance; then a small CNN that
recognises an object's colour and shape in a crop. Everything is saved in the diffusers format
(fp16 safetensors) with the training configuration, the losses and a sample grid, so that
``StableDiffusionPipeline.from_pretrained(out)`` loads it.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import (
    AutoencoderKL,
    DDPMScheduler,
    PNDMScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from diffusers.training_utils import EMAModel
from safetensors.torch import save_file
from torch import nn
from torchvision.ops import roi_align
from torchvision.utils import save_image
from tqdm.auto import tqdm
from transformers import CLIPTextConfig, CLIPTextModel

from benchmarks.tiny_model import SD14_SCHEDULER_CONFIG, clip_tokenizer
from benchmarks.toy.captions import CaptionTokenizer, object_phrase, training_captions
from benchmarks.toy.render import (
    BACKGROUNDS,
    COLOURS,
    SHAPES,
    Layout,
    render,
    sample_layouts,
)

IMAGE_SIZE = 64


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; saved with the weights as training.json."""

    seed: int = 0
    batch_size: int = 512
    # Step counts, not a time budget, so that a seed gives the same weights on any machine of one kind.
    vae_steps: int = 1000
    text_steps: int = 800
    unet_steps: int = 4000
    classifier_steps: int = 600
    classifier_pool: int = 2048  # autoencoded scenes the classifier's crops come from
    vae_lr: float = 5e-4
    text_lr: float = 1e-3
    unet_lr: float = 6e-4
    warmup_steps: int = 200
    kl_weight: float = 1e-6
    caption_dropout: float = 0.1
    partial_captions: float = 0.5  # share of scenes captioned in part (some objects, background or not)
    ema_decay: float = 0.9995  # with diffusers' EMA warm-up, so early weights fade out quickly
    pool_batches: int = 16  # scenes are drawn, captioned and rendered this many batches at a time
    compile: bool = True  # torch.compile the UNet + text encoder loss
    # Sizes keep the fp16 weights (tokenizer files included) under 30 MB and an edit on two CPU
    # cores around two seconds: the 16 x 16 level is narrow, capacity sits at 4 x 4.
    text_hidden: int = 64
    text_layers: int = 4
    unet_channels: tuple[int, int, int] = (32, 64, 192)
    unet_layers_per_block: int = 1


def build_vae() -> AutoencoderKL:
    """64 px -> 16 x 16 x 4 latents (three levels: the VAE downsamples by 4)."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(32, 64, 64),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=IMAGE_SIZE,
    )


def build_text_encoder(config: TrainConfig) -> CLIPTextModel:
    """A small causal CLIP text encoder over the full 49,408-token CLIP vocabulary."""
    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=config.text_hidden,
            intermediate_size=4 * config.text_hidden,
            num_hidden_layers=config.text_layers,
            num_attention_heads=4,
            max_position_embeddings=77,
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
        )
    )


def build_unet(config: TrainConfig) -> UNet2DConditionModel:
    """Cross-attention at 16 x 16 and 8 x 8 in the down and up blocks (and the 4 x 4 mid block)."""
    return UNet2DConditionModel(
        sample_size=IMAGE_SIZE // 4,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=config.unet_channels,
        layers_per_block=config.unet_layers_per_block,
        cross_attention_dim=config.text_hidden,
        attention_head_dim=(2, 4, 4),
        norm_num_groups=32,
    )


class ObjectClassifier(nn.Module):
    """Colour (6) and shape (4) of the object in a 32 x 32 crop: a small CNN with two heads."""

    def __init__(self) -> None:
        super().__init__()
        def block(i: int, o: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))

        self.features = nn.Sequential(block(3, 32), block(32, 64), block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.colour = nn.Linear(128, len(COLOURS))
        self.shape = nn.Linear(128, len(SHAPES))

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(crops * 2 - 1)
        return self.colour(features), self.shape(features)


def object_crops(images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator | None = None, pad: float = 0.3) -> torch.Tensor:
    """32 x 32 crops (bilinear, ``roi_align``) of the square around each mask's bounding box,
    padded by ``pad`` of its side (random in [0, pad] with a generator) and kept inside the
    image; an empty mask gives the whole image. All crops in one call: no per-crop host work.
    """
    n, _, height, width = images.shape
    rows, cols = masks.any(dim=2), masks.any(dim=1)  # (N, H), (N, W)
    empty = ~rows.any(dim=1)
    y0 = rows.float().argmax(dim=1)
    y1 = height - rows.flip(1).float().argmax(dim=1)
    x0 = cols.float().argmax(dim=1)
    x1 = width - cols.flip(1).float().argmax(dim=1)
    share = torch.full((n,), pad) if generator is None else pad * torch.rand(n, generator=generator)
    side = torch.maximum(y1 - y0, x1 - x0).float() * (1 + 2 * share.to(images.device))
    cy, cx = (y0 + y1).float() / 2, (x0 + x1).float() / 2
    boxes = torch.stack([(cx - side / 2).clamp(min=0), (cy - side / 2).clamp(min=0),
                         (cx + side / 2).clamp(max=width), (cy + side / 2).clamp(max=height)], dim=1)
    whole = torch.tensor([0.0, 0.0, width, height], device=images.device)
    boxes = torch.where(empty[:, None], whole, boxes)
    indices = torch.arange(n, device=images.device, dtype=boxes.dtype)[:, None]
    return roi_align(images, torch.cat([indices, boxes], dim=1), output_size=32, aligned=True)


@dataclass
class Scenes:
    """Rendered scenes on the training device with their layouts (CPU) and padded caption ids."""

    images: torch.Tensor  # (N, 3, 64, 64) in [0, 1]
    masks: torch.Tensor  # (N, K, 64, 64) bool
    ids: torch.Tensor  # (N, 77) long
    layout: Layout

    def batches(self, size: int) -> Iterator[Scenes]:
        for start in range(0, len(self.ids), size):
            part = slice(start, start + size)
            yield Scenes(self.images[part], self.masks[part], self.ids[part], self.layout[part])


def scene_stream(config: TrainConfig, generator: torch.Generator, tokens: CaptionTokenizer, device: torch.device) -> Iterator[Scenes]:
    """Endless batches of fresh scenes.

    Layouts are drawn, captioned and tokenised on the host ``pool_batches`` batches at a time and
    rendered in one call on the device, so a training step costs the host only a slice: the
    per-step host work was the bottleneck of per-batch drawing.
    """
    while True:
        layout = sample_layouts(config.batch_size * config.pool_batches, generator)
        images, masks = render(layout.to(device), IMAGE_SIZE, device)
        ids = tokens(training_captions(layout, generator, config.partial_captions)).to(device, non_blocking=True)
        yield from Scenes(images, masks, ids, layout).batches(config.batch_size)


def _schedule(step: int, total: int, config: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to zero at ``total`` steps: a factor of the base learning rate."""
    warmup = min(1.0, (step + 1) / config.warmup_steps)
    return warmup * 0.5 * (1 + math.cos(math.pi * min(1.0, step / total)))


class _Losses:
    """Losses every ``every`` steps, kept on the device until the end (reading one would sync each step)."""

    def __init__(self, every: int = 50) -> None:
        self.every, self.steps, self.values = every, [], []

    def record(self, step: int, loss: torch.Tensor) -> None:
        if step % self.every == 0:
            self.steps.append(step)
            self.values.append(loss.detach())

    def as_list(self) -> list[tuple[int, float]]:
        return list(zip(self.steps, torch.stack(self.values).tolist())) if self.values else []


def train_vae(config: TrainConfig, scenes: Iterator[Scenes], device: torch.device) -> tuple[AutoencoderKL, _Losses]:
    """The autoencoder, then its latent scaling factor (1 / std of the latents, as SD's 0.18215)."""
    vae = build_vae().to(device).train()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=config.vae_lr, fused=device.type == "cuda")
    losses = _Losses()
    for step in tqdm(range(config.vae_steps), desc="autoencoder", mininterval=10):
        x = next(scenes).images * 2 - 1
        for group in optimizer.param_groups:
            group["lr"] = config.vae_lr * _schedule(step, config.vae_steps, config)
        with _autocast(device):
            posterior = vae.encode(x).latent_dist
            reconstruction = vae.decode(posterior.sample()).sample
        loss = F.mse_loss(reconstruction.float(), x) + config.kl_weight * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.record(step, loss)
    vae.eval().requires_grad_(False)
    with torch.no_grad():
        std = vae.encode(next(scenes).images * 2 - 1).latent_dist.mean.std().item()
    vae.register_to_config(scaling_factor=1.0 / std)
    return vae, losses


class SceneEncoder(nn.Module):
    """The image tower of the text encoder's contrastive training: a small CNN, 64 px scene -> embedding."""

    def __init__(self, dim: int) -> None:
        super().__init__()

        def block(i: int, o: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.GroupNorm(8, o), nn.SiLU(), nn.MaxPool2d(2))

        self.features = nn.Sequential(block(3, 32), block(32, 64), block(64, 128), block(128, 128), nn.Flatten())
        self.project = nn.Linear(128 * 4 * 4, dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.project(self.features(images * 2 - 1))


def caption_targets(ids: torch.Tensor) -> torch.Tensor:
    """Row-normalised matches of identical captions: every scene with the same caption is a positive."""
    same = (ids[:, None, :] == ids[None, :, :]).all(-1).float()
    return same / same.sum(1, keepdim=True)


def train_text_encoder(config: TrainConfig, scenes: Iterator[Scenes], device: torch.device) -> tuple[CLIPTextModel, _Losses]:
    """The text encoder, trained as CLIP's is (contrastive, on the end token's state), then frozen.

    Stable Diffusion conditions on a frozen CLIP text encoder, whose token states carry each
    word's meaning in context. Trained jointly with the UNet instead (the first toy model),
    the padding positions after the caption took 86 % of every pixel's cross-attention, the
    start token under 2 %, and the words' maps did not mark their objects (models/toy/README.md):
    so CLIP's recipe first, then the UNet learns to read a fixed encoder, as SD's did.
    """
    text_encoder = build_text_encoder(config).to(device).train()
    images_tower = SceneEncoder(config.text_hidden).to(device).train()
    log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07), device=device))
    params = [*text_encoder.parameters(), *images_tower.parameters(), log_scale]
    optimizer = torch.optim.AdamW(params, lr=config.text_lr, weight_decay=1e-2)
    losses = _Losses()
    for step in tqdm(range(config.text_steps), desc="text encoder", mininterval=10):
        batch = next(scenes)
        for group in optimizer.param_groups:
            group["lr"] = config.text_lr * _schedule(step, config.text_steps, config)
        with _autocast(device):
            text = F.normalize(text_encoder(batch.ids).pooler_output.float(), dim=-1)
            image = F.normalize(images_tower(batch.images).float(), dim=-1)
        logits = log_scale.exp().clamp(max=100) * image @ text.T
        targets = caption_targets(batch.ids)
        loss = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets.T)) / 2
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.record(step, loss)
    return text_encoder.eval().requires_grad_(False), losses


def train_denoiser(
    config: TrainConfig,
    scenes: Iterator[Scenes],
    vae: AutoencoderKL,
    text_encoder: CLIPTextModel,
    tokens: CaptionTokenizer,
    device: torch.device,
) -> tuple[UNet2DConditionModel, _Losses]:
    """The UNet, epsilon-prediction on the frozen autoencoder's latents and the frozen text encoder's states.

    Returns the exponential moving average of its weights (what the pipeline samples with).
    """
    unet = build_unet(config).to(device).train()
    params = list(unet.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.unet_lr, weight_decay=1e-2, fused=device.type == "cuda")
    ema = EMAModel(params, decay=config.ema_decay, use_ema_warmup=True, foreach=True)
    alphas = DDPMScheduler.from_config(SD14_SCHEDULER_CONFIG).alphas_cumprod.to(device)  # SD 1.x betas
    unconditional = tokens([""]).to(device)
    noise_generator = torch.Generator(device).manual_seed(config.seed + 1)

    def loss_of(z0: torch.Tensor, ids: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        a = alphas[t].view(-1, 1, 1, 1)
        with _autocast(device):
            with torch.no_grad():
                context = text_encoder(ids).last_hidden_state
            prediction = unet(a.sqrt() * z0 + (1 - a).sqrt() * noise, t, encoder_hidden_states=context).sample
        return F.mse_loss(prediction.float(), noise)

    if config.compile:
        loss_of = torch.compile(loss_of)
    losses = _Losses()
    for step in tqdm(range(config.unet_steps), desc="denoiser", mininterval=10):
        batch = next(scenes)
        n = len(batch.ids)
        with torch.no_grad(), _autocast(device):
            z0 = vae.encode(batch.images * 2 - 1).latent_dist.sample().float() * vae.config.scaling_factor
        dropped = torch.rand(n, 1, generator=noise_generator, device=device) < config.caption_dropout
        ids = torch.where(dropped, unconditional, batch.ids)
        t = torch.randint(0, len(alphas), (n,), generator=noise_generator, device=device)
        noise = torch.randn(z0.shape, generator=noise_generator, device=device)
        for group in optimizer.param_groups:
            group["lr"] = config.unet_lr * _schedule(step, config.unet_steps, config)
        loss = loss_of(z0, ids, t, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        optimizer.step()
        ema.step(params)
        losses.record(step, loss)
    ema.copy_to(params)
    return unet.eval().requires_grad_(False), losses


@torch.no_grad()
def autoencoded(vae: AutoencoderKL, images: torch.Tensor) -> torch.Tensor:
    """``images`` in [0, 1] through the autoencoder and back (the latent mode): what any decoded image looks like."""
    x = vae.decode(vae.encode(images * 2 - 1).latent_dist.mode()).sample
    return ((x.float() + 1) / 2).clamp(0, 1)


def train_classifier(
    config: TrainConfig, scenes: Iterator[Scenes], vae: AutoencoderKL, generator: torch.Generator, device: torch.device
) -> tuple[ObjectClassifier, _Losses]:
    """Colour and shape of slot 0's object (always present), from crops with random padding.

    The crops are taken from ``classifier_pool`` autoencoded scenes (autoencoding once, then
    drawing batches from the pool, keeps this affordable on a CPU): generated and edited images are decoded
    latents, and a classifier trained on crisp renders alone mistook decoded circles for
    squares or triangles (31 % of autoencoded circles recognised, 100 % of rendered ones).
    """
    pool = [next(scenes) for _ in range(math.ceil(config.classifier_pool / config.batch_size))]
    images = torch.cat([autoencoded(vae, batch.images) for batch in tqdm(pool, desc="autoencoding crops", mininterval=10)])
    masks = torch.cat([batch.masks[:, 0] for batch in pool])
    colours = torch.cat([batch.layout.colour[:, 0] for batch in pool]).to(device)
    shapes = torch.cat([batch.layout.shape[:, 0] for batch in pool]).to(device)
    classifier = ObjectClassifier().to(device).train()
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=2e-3)
    losses = _Losses()
    for step in tqdm(range(config.classifier_steps), desc="classifier", mininterval=10):
        pick = torch.randint(len(images), (config.batch_size,), generator=generator).to(device)
        colour_logits, shape_logits = classifier(object_crops(images[pick], masks[pick], generator))
        loss = F.cross_entropy(colour_logits, colours[pick]) + F.cross_entropy(shape_logits, shapes[pick])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.record(step, loss)
    return classifier.eval().requires_grad_(False), losses


@torch.no_grad()
def classifier_accuracy(classifier: ObjectClassifier, vae: AutoencoderKL, device: torch.device, n: int = 1024, seed: int = 12345) -> dict:
    """Held-out accuracy (colour and shape both right) on fresh single-object scenes, rendered and autoencoded."""
    layout = sample_layouts(n, torch.Generator().manual_seed(seed), max_objects=1)
    images, masks = render(layout.to(device), IMAGE_SIZE, device)
    truth_colour, truth_shape = layout.colour[:, 0].to(device), layout.shape[:, 0].to(device)
    accuracy = {}
    for name, x in (("rendered", images), ("autoencoded", autoencoded(vae, images))):
        colour_logits, shape_logits = classifier(object_crops(x, masks[:, 0]))
        right = (colour_logits.argmax(1) == truth_colour) & (shape_logits.argmax(1) == truth_shape)
        accuracy[name] = right.float().mean().item()
    return {**accuracy, "scenes": n, "seed": seed}


def _autocast(device: torch.device) -> torch.autocast:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def train(out: Path, config: TrainConfig, device: torch.device, eval_per_prompt: int = 8) -> dict:
    """Train all three parts, evaluate the generator, save the pipeline, the classifier and the report."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    tokenizer = clip_tokenizer()
    tokens = CaptionTokenizer(tokenizer)
    scenes = scene_stream(config, generator, tokens, device)
    seconds: dict[str, float] = {}

    def timed(name: str, fn, *args):
        started = time.perf_counter()
        result = fn(*args)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds[name] = round(time.perf_counter() - started, 1)
        return result

    vae, vae_losses = timed("autoencoder", train_vae, config, scenes, device)
    text_encoder, text_losses = timed("text_encoder", train_text_encoder, config, scenes, device)
    unet, unet_losses = timed("denoiser", train_denoiser, config, scenes, vae, text_encoder, tokens, device)
    classifier, classifier_losses = timed("classifier", train_classifier, config, scenes, vae, generator, device)
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=PNDMScheduler(**SD14_SCHEDULER_CONFIG),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    report = {
        "config": asdict(config),
        "device": _device_name(device),
        "torch": torch.__version__,
        "seconds": seconds,
        "losses": {"autoencoder": vae_losses.as_list(), "text_encoder": text_losses.as_list(), "denoiser": unet_losses.as_list(),
                   "classifier": classifier_losses.as_list()},
    }
    out.mkdir(parents=True, exist_ok=True)
    pipe.to(torch.float16).save_pretrained(out, safe_serialization=True)
    return _evaluate_and_save(out, pipe.to(torch.float32), classifier, report, device, eval_per_prompt)


def retrain_classifier(out: Path, config: TrainConfig, device: torch.device, eval_per_prompt: int = 8) -> dict:
    """Train only the classifier again, against the saved model's autoencoder, and re-evaluate the generator.

    For a better measurement of an existing generator: the weights of the pipeline are not touched.
    """
    report = json.loads((out / "training.json").read_text())
    pipe = StableDiffusionPipeline.from_pretrained(out, torch_dtype=torch.float32, safety_checker=None, requires_safety_checker=False)
    generator = torch.Generator().manual_seed(config.seed + 2)
    scenes = scene_stream(config, generator, CaptionTokenizer(pipe.tokenizer), device)
    started = time.perf_counter()
    classifier, losses = train_classifier(config, scenes, pipe.vae.to(device), generator, device)
    report["losses"]["classifier"] = losses.as_list()
    report["classifier_retrained"] = {"device": _device_name(device), "seconds": round(time.perf_counter() - started, 1),
                                      "seed": config.seed + 2, "steps": config.classifier_steps, "batch_size": config.batch_size}
    return _evaluate_and_save(out, pipe, classifier, report, device, eval_per_prompt)


def _evaluate_and_save(
    out: Path, pipe: StableDiffusionPipeline, classifier: ObjectClassifier, report: dict, device: torch.device, eval_per_prompt: int
) -> dict:
    """Held-out classifier accuracy, the generator's accuracy and sample grid; the classifier and the report saved."""
    pipe.set_progress_bar_config(disable=True)
    pipe = pipe.to(device)
    report["classifier_accuracy"] = classifier_accuracy(classifier, pipe.vae, device)
    report["generator_accuracy"], samples = generator_accuracy(pipe, classifier, device, eval_per_prompt)
    save_image(samples, out / "samples.png", nrow=8)  # 4 samples per prompt: colour x shape, gray background
    (out / "classifier").mkdir(exist_ok=True)
    save_file({k: v.half() if v.is_floating_point() else v for k, v in classifier.state_dict().items()}, out / "classifier" / "model.safetensors")
    (out / "training.json").write_text(json.dumps(report, indent=1))
    return report


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


@torch.no_grad()
def generator_accuracy(pipe: StableDiffusionPipeline, classifier: ObjectClassifier, device: torch.device, per_prompt: int = 8) -> tuple[dict, torch.Tensor]:
    """Share of single-object prompts whose generated object the classifier recognises (colour and shape).

    Every colour x shape prompt on the gray background, ``per_prompt`` images each (30 PNDM
    steps, guidance 7.5); the object's mask is where the image is away from the gray.
    """
    pipe = pipe.to(device)
    hits, total, grid, by_prompt = 0, 0, [], {}
    background = torch.tensor(BACKGROUNDS["gray"], device=device).view(1, 3, 1, 1)
    for colour in range(len(COLOURS)):
        for shape in range(len(SHAPES)):
            prompt = f"{object_phrase(colour, shape)} on a gray background"
            images = pipe([prompt] * per_prompt, num_inference_steps=30, guidance_scale=7.5, height=IMAGE_SIZE, width=IMAGE_SIZE,
                          generator=torch.Generator().manual_seed(colour * 10 + shape), output_type="pt").images.float().to(device)
            masks = (images - background).abs().amax(dim=1) > 0.2
            colour_logits, shape_logits = classifier(object_crops(images, masks))
            right = (colour_logits.argmax(1) == colour) & (shape_logits.argmax(1) == shape)
            hits += int(right.sum())
            total += per_prompt
            by_prompt[prompt] = {"right": int(right.sum()), "colour": int((colour_logits.argmax(1) == colour).sum()),
                                 "shape": int((shape_logits.argmax(1) == shape).sum())}
            grid.append(images[:4].cpu())
    return {"accuracy": hits / total, "images": total, "per_prompt": per_prompt, "by_prompt": by_prompt}, torch.cat(grid)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("models/toy"))
    defaults = TrainConfig()
    for name in ("seed", "batch_size", "vae_steps", "text_steps", "unet_steps", "classifier_steps"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    for name in ("unet_lr", "partial_captions"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="train the denoiser eagerly")
    parser.add_argument("--eval-per-prompt", type=int, default=8, help="generated images per single-object prompt")
    parser.add_argument("--classifier-only", action="store_true", help="retrain only the classifier of the model in --out and re-evaluate")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = TrainConfig(**{k: v for k, v in vars(args).items() if k not in ("out", "eval_per_prompt", "classifier_only")})
    if args.classifier_only:
        report = retrain_classifier(args.out, config, device, args.eval_per_prompt)
    else:
        report = train(args.out, config, device, args.eval_per_prompt)
    print(json.dumps({k: v for k, v in report.items() if k != "losses"}, indent=1))


if __name__ == "__main__":
    main()
