"""Train the toy world's text-to-image model (and its object classifier) from scenes rendered on the fly.

    python -m benchmarks.toy.train --out models/toy --minutes 8

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
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from torch import nn
from torchvision.utils import save_image
from transformers import CLIPTextConfig, CLIPTextModel

from benchmarks.tiny_model import SD14_SCHEDULER_CONFIG, clip_tokenizer
from benchmarks.toy.captions import CaptionTokenizer, captions, object_phrase
from benchmarks.toy.render import BACKGROUNDS, COLOURS, SHAPES, render, sample_layouts

IMAGE_SIZE = 64


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    minutes: float = 8.0  # wall-clock budget for everything
    vae_share: float = 0.2  # of the budget
    classifier_share: float = 0.05
    batch_size: int = 256
    vae_lr: float = 5e-4
    unet_lr: float = 4e-4
    warmup_steps: int = 200
    kl_weight: float = 1e-6
    caption_dropout: float = 0.1
    # Sizes keep the fp16 weights (tokenizer files included) under 30 MB.
    text_hidden: int = 64
    text_layers: int = 4
    unet_channels: tuple[int, int, int] = (64, 96, 128)


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
        layers_per_block=2,
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
    """32 x 32 crops around each mask's bounding box, padded by ``pad`` of its size (random in [0, pad] with a generator)."""
    crops = []
    for image, mask in zip(images, masks):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        if len(ys) == 0:
            crops.append(F.interpolate(image[None], size=32, mode="bilinear", align_corners=False)[0])
            continue
        y0, y1, x0, x1 = ys.min().item(), ys.max().item() + 1, xs.min().item(), xs.max().item() + 1
        share = pad if generator is None else pad * torch.rand((), generator=generator).item()
        side = max(y1 - y0, x1 - x0) * (1 + 2 * share)
        cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
        top, left = int(max(0, cy - side / 2)), int(max(0, cx - side / 2))
        bottom, right = int(min(image.shape[1], cy + side / 2 + 1)), int(min(image.shape[2], cx + side / 2 + 1))
        crops.append(F.interpolate(image[None, :, top:bottom, left:right], size=32, mode="bilinear", align_corners=False)[0])
    return torch.stack(crops)


def _lr(step: int, config: TrainConfig, base: float) -> float:
    return base * min(1.0, (step + 1) / config.warmup_steps)


def train(out: Path, config: TrainConfig, device: torch.device, eval_per_prompt: int = 8) -> dict:
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    started = time.perf_counter()
    budget = config.minutes * 60
    log: dict[str, list] = {"vae": [], "unet": [], "classifier": []}
    tokenizer = clip_tokenizer()
    tokens = CaptionTokenizer(tokenizer)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def batch(min_objects: int = 1) -> tuple[torch.Tensor, torch.Tensor, list[str], object]:
        layout = sample_layouts(config.batch_size, generator, min_objects=min_objects)
        images, masks = render(layout.to(device), IMAGE_SIZE, device)
        return images, masks, captions(layout), layout

    # 1. The autoencoder.
    vae = build_vae().to(device).train()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=config.vae_lr)
    step = 0
    while time.perf_counter() - started < budget * config.vae_share:
        images, *_ = batch()
        x = images * 2 - 1
        for group in optimizer.param_groups:
            group["lr"] = _lr(step, config, config.vae_lr)
        with autocast:
            posterior = vae.encode(x).latent_dist
            reconstruction = vae.decode(posterior.sample()).sample
        loss = F.mse_loss(reconstruction.float(), x) + config.kl_weight * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 50 == 0:
            log["vae"].append((step, loss.item()))
        step += 1
    vae.eval().requires_grad_(False)
    with torch.no_grad():
        images, *_ = batch()
        std = vae.encode(images * 2 - 1).latent_dist.mean.std().item()
    vae.register_to_config(scaling_factor=1.0 / std)

    # 2. The UNet and the text encoder, on the frozen autoencoder's latents.
    unet = build_unet(config).to(device).train()
    text_encoder = build_text_encoder(config).to(device).train()
    noise_schedule = DDPMScheduler.from_config(SD14_SCHEDULER_CONFIG)  # SD 1.x betas; unknown keys ignored
    alphas = noise_schedule.alphas_cumprod.to(device)
    unconditional = tokens([""]).to(device)
    params = list(unet.parameters()) + list(text_encoder.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.unet_lr, weight_decay=1e-2)
    unet_started, step = time.perf_counter(), 0
    unet_budget = budget * (1 - config.vae_share - config.classifier_share) - (unet_started - started)
    while time.perf_counter() - unet_started < unet_budget:
        images, _, texts, _ = batch()
        ids = tokens(texts).to(device)
        dropped = torch.rand(len(ids), generator=generator).to(device) < config.caption_dropout
        ids = torch.where(dropped[:, None], unconditional, ids)
        with torch.no_grad():
            z0 = vae.encode(images * 2 - 1).latent_dist.sample() * vae.config.scaling_factor
        t = torch.randint(0, 1000, (len(z0),), generator=generator).to(device)
        noise = torch.randn(z0.shape, generator=generator).to(device)
        a = alphas[t].view(-1, 1, 1, 1)
        zt = a.sqrt() * z0 + (1 - a).sqrt() * noise
        for group in optimizer.param_groups:
            group["lr"] = _lr(step, config, config.unet_lr) * 0.5 * (1 + math.cos(math.pi * min(1.0, (time.perf_counter() - unet_started) / unet_budget)))
        with autocast:
            context = text_encoder(ids).last_hidden_state
            prediction = unet(zt, t, encoder_hidden_states=context).sample
        loss = F.mse_loss(prediction.float(), noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        if step % 50 == 0:
            log["unet"].append((step, loss.item()))
        step += 1

    # 3. The object classifier, on crops of rendered objects.
    classifier = ObjectClassifier().to(device).train()
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=2e-3)
    step, classifier_started = 0, time.perf_counter()
    while time.perf_counter() - classifier_started < budget * config.classifier_share:
        images, masks, _, layout = batch()
        slot = torch.zeros(len(images), dtype=torch.long)  # slot 0 always holds an object
        crops = object_crops(images, masks[torch.arange(len(images)), slot.to(device)], generator)
        colour_logits, shape_logits = classifier(crops)
        loss = F.cross_entropy(colour_logits, layout.colour[:, 0].to(device)) + F.cross_entropy(shape_logits, layout.shape[:, 0].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 50 == 0:
            log["classifier"].append((step, loss.item()))
        step += 1
    classifier.eval()

    pipe = StableDiffusionPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        unet=unet.eval(),
        scheduler=PNDMScheduler(**SD14_SCHEDULER_CONFIG),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    report = {"config": asdict(config), "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "seconds": time.perf_counter() - started, "losses": log}
    report["generator_accuracy"], samples = generator_accuracy(pipe, classifier, device, eval_per_prompt)
    out.mkdir(parents=True, exist_ok=True)
    save_image(samples, out / "samples.png", nrow=8)  # 4 samples per prompt: colour x shape, gray background
    pipe.to(torch.float16).save_pretrained(out, safe_serialization=True)
    (out / "classifier").mkdir(exist_ok=True)
    from safetensors.torch import save_file

    save_file({k: v.half() if v.is_floating_point() else v for k, v in classifier.state_dict().items()}, out / "classifier" / "model.safetensors")
    (out / "training.json").write_text(json.dumps(report, indent=1))
    return report


@torch.no_grad()
def generator_accuracy(pipe: StableDiffusionPipeline, classifier: ObjectClassifier, device: torch.device, per_prompt: int = 8) -> dict:
    """Share of single-object prompts whose generated object the classifier recognises (colour and shape)."""
    pipe = pipe.to(device)
    hits, total, grid = 0, 0, []
    for colour in range(len(COLOURS)):
        for shape in range(len(SHAPES)):
            prompt = f"{object_phrase(colour, shape)} on a gray background"
            images = pipe([prompt] * per_prompt, num_inference_steps=30, guidance_scale=7.5, height=IMAGE_SIZE, width=IMAGE_SIZE,
                          generator=torch.Generator().manual_seed(colour * 10 + shape), output_type="pt").images.float()
            background = torch.tensor(BACKGROUNDS["gray"], device=images.device).view(1, 3, 1, 1)
            masks = (images - background).abs().amax(dim=1) > 0.2  # pixels away from the gray background
            colour_logits, shape_logits = classifier(object_crops(images.to(device), masks.to(device)))
            right = (colour_logits.argmax(1) == colour) & (shape_logits.argmax(1) == shape)
            hits += int(right.sum())
            total += per_prompt
            grid.append(images[:4].cpu())
    return {"accuracy": hits / total, "prompts": total, "per_prompt": per_prompt}, torch.cat(grid)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("models/toy"))
    parser.add_argument("--minutes", type=float, default=TrainConfig.minutes)
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--eval-per-prompt", type=int, default=8, help="generated images per single-object prompt")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = TrainConfig(seed=args.seed, minutes=args.minutes, batch_size=args.batch_size)
    report = train(args.out, config, device, args.eval_per_prompt)
    print(json.dumps({k: v for k, v in report.items() if k != "losses"}, indent=1))


if __name__ == "__main__":
    main()
