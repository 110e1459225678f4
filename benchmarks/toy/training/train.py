"""Train the toy world's models from scenes rendered on the fly: one seeded command on one GPU.

    python -m benchmarks.toy.training.train --out models/toy --archive outputs/toy-models.tar
    python -m benchmarks.toy.training.train --out /tmp/toy --smoke          # every stage for a few steps, timed

Stages, in order (``docs/toy-training-log.md`` tells why each is as it is):

1. a small causal CLIP text encoder with CLIP's projection, trained contrastively, then frozen;
2. an ``AutoencoderKL`` (64 px -> 16 x 16 x 4) without mid-block attention, whose decoder also
   learns from spliced latents (two scenes' latents joined along a random mask, the two images
   joined along the same mask as the target), so that latents changed in one region decode to
   an image changed in that region only;
3. the object classifier (colour and shape of a crop), on autoencoded scenes;
4. three denoisers, interleaved step by step on the same batches of frozen latents and text states:
   the SD 1.x ``UNet2DConditionModel`` (epsilon, SD 1.x's schedule), its 9-channel inpainting twin
   (trained as SD-inpainting: random masks, the masked image's latents and the mask as extra
   input channels) and a small ``SD3Transformer2DModel`` (rectified flow with SD3's logit-normal
   timesteps), each with caption dropout for classifier-free guidance and an EMA of its weights.

On a GPU every step of stages 1, 2 and 4 is one CUDA graph (:mod:`benchmarks.toy.training.steps`). The
models are saved in the hub layouts of their pipelines (:mod:`benchmarks.toy.training.folders`), then
measured (:mod:`benchmarks.toy.training.evaluation`); ``training.json`` holds the configuration, the
times, the losses and the measurements.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import (
    AutoencoderKL,
    FlowMatchEulerDiscreteScheduler,
    PNDMScheduler,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
    StableDiffusionInpaintPipeline,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from safetensors.torch import load_file, save_file
from torch import nn
from torchvision.utils import save_image
from tqdm.auto import tqdm
from transformers import CLIPTextModel, CLIPTextModelWithProjection

from benchmarks.models.families import WITHOUT_T5
from benchmarks.models.tiny import SD14_SCHEDULER_CONFIG, clip_tokenizer
from benchmarks.toy.captions import CaptionTokenizer, training_captions
from benchmarks.toy.classifier import ObjectClassifier, object_crops
from benchmarks.toy.model import load_classifier, sibling
from benchmarks.toy.render import Layout, render, sample_layouts
from benchmarks.toy.training.config import SMOKE_STEPS, TrainConfig, denoiser_targets, graphed
from benchmarks.toy.training.denoisers import (
    DENOISERS,
    denoiser_inputs,
    denoiser_trainers,
    twin_trainer,
)
from benchmarks.toy.training.evaluation import (
    EvalSettings,
    autoencoded,
    autoencoder_quality,
    classifier_accuracy,
    condition_loss,
    generator_accuracy,
    inpainting_quality,
)
from benchmarks.toy.training.folders import (
    archive,
    save_pipelines,
    save_twin,
)
from benchmarks.toy.training.masks import MaskSampler
from benchmarks.toy.training.nets import IMAGE_SIZE, SceneEncoder, build_text_encoder, build_vae
from benchmarks.toy.training.steps import Clock, Trainer, bf16_autocast, run_loop

EVAL_RESERVE_S = 75.0
"""Seconds a ``--deadline`` keeps free after the denoisers for evaluation, saving and the archive."""
TWIN_RESERVE_S = 150.0
"""Seconds a ``--deadline`` keeps free after the UNet and the DiT for the twin fine-tuned from the UNet (``twin_init="base"``)."""


@dataclass
class Scenes:
    """Rendered scenes on the training device with their layouts (CPU) and padded caption ids."""

    images: torch.Tensor  # (N, 3, 64, 64) in [0, 1]
    masks: torch.Tensor  # (N, K, 64, 64) bool
    ids: torch.Tensor  # (N, 77) long
    layout: Layout


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` on ``device``; on CUDA through pinned memory, so that the copy does not wait for the queued steps."""
    return tensor.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else tensor.to(device)


class SceneStream:
    """Endless batches of fresh scenes, resumable.

    Layouts are drawn, captioned and tokenised on the host ``pool_batches`` batches at a time and
    rendered in one call on the device, so a training step costs the host only a slice. The state
    is the generator's at the current pool's start and the batches taken from it.
    """

    def __init__(self, config: TrainConfig, batch_size: int, seed: int, tokens: CaptionTokenizer, device: torch.device) -> None:
        self.config, self.batch_size, self.tokens, self.device = config, batch_size, tokens, device
        self.generator = torch.Generator().manual_seed(seed)
        self.pool_state = self.generator.get_state()
        self.pool: list[Scenes] = []
        self.taken = 0

    def __iter__(self) -> Iterator[Scenes]:
        return self

    def __next__(self) -> Scenes:
        if self.taken == len(self.pool):
            self.pool_state = self.generator.get_state()
            self.pool, self.taken = self._draw(), 0
        self.taken += 1
        return self.pool[self.taken - 1]

    def _draw(self) -> list[Scenes]:
        # The host's work first, while the GPU works through the steps already queued; then copies
        # that do not wait for them (pinned memory), and the rendering (one host sync, in render).
        n = self.batch_size * self.config.pool_batches
        layout = sample_layouts(n, self.generator)
        ids = _to_device(self.tokens(training_captions(layout, self.generator, self.config.partial_captions)), self.device)
        on_device = Layout(**{f.name: _to_device(getattr(layout, f.name), self.device) for f in fields(Layout)})
        images, masks = render(on_device, IMAGE_SIZE, self.device)
        return [
            Scenes(images[s : s + self.batch_size], masks[s : s + self.batch_size], ids[s : s + self.batch_size], layout[s : s + self.batch_size])
            for s in range(0, n, self.batch_size)
        ]

    def state_dict(self) -> dict:
        return {"pool_state": self.pool_state, "taken": self.taken}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["pool_state"])
        self.pool_state = self.generator.get_state()
        self.pool, self.taken = self._draw(), state["taken"]


def caption_targets(ids: torch.Tensor) -> torch.Tensor:
    """Row-normalised matches of identical captions: every scene with the same caption is a positive."""
    same = (ids[:, None, :] == ids[None, :, :]).all(-1).float()
    return same / same.sum(1, keepdim=True)


def caption_token_mask(ids: torch.Tensor, eos: int) -> torch.Tensor:
    """(N, L) float: 1 at a caption's own tokens (after the start token, before the first end token)."""
    positions = torch.arange(ids.shape[1], device=ids.device)
    end = (ids == eos).int().argmax(dim=1, keepdim=True)
    return ((positions >= 1) & (positions < end)).float()


def text_encoder_trainer(config: TrainConfig, device: torch.device) -> Trainer:
    """The text encoder, trained as CLIP's is (contrastive against a small image tower), then frozen
    (or, with ``text_joint``, trained on with the UNet).

    Stable Diffusion conditions on a frozen CLIP text encoder, whose token states carry each
    word's meaning in context. Trained jointly with the UNet instead (the first toy model),
    the padding positions after the caption took 86 % of every pixel's cross-attention and the
    words' maps did not mark their objects: so CLIP's recipe first, then the denoisers learn to
    read a fixed encoder, as SD's did. ``text_pooling`` says what is embedded: the projected end
    token (CLIP's way) or the mean of the caption's projected token states (for an encoder
    without mixing, whose end token is the same for every caption).
    """
    text_encoder = build_text_encoder(config.text_hidden, config.text_layers, config.text_projection, config.text_mixing).to(device).train()
    images_tower = SceneEncoder(config.text_projection).to(device).train()
    log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07), device=device))
    eos = text_encoder.config.eos_token_id

    def embedded(ids: torch.Tensor) -> torch.Tensor:
        output = text_encoder(ids)
        if config.text_pooling == "end":
            return output.text_embeds
        words = caption_token_mask(ids, eos)[..., None]
        states = text_encoder.text_projection(output.last_hidden_state)
        return (states * words).sum(1) / words.sum(1).clamp(min=1)

    def loss_fn(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        with bf16_autocast(device):
            text = F.normalize(embedded(inputs["ids"]).float(), dim=-1)
            image = F.normalize(images_tower(inputs["images"]).float(), dim=-1)
        logits = log_scale.exp().clamp(max=100) * image @ text.T
        targets = caption_targets(inputs["ids"])
        return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets.T)) / 2

    return Trainer(
        "text_encoder",
        text_encoder,
        loss_fn,
        lr=config.text_lr,
        total=config.text_steps,
        warmup=config.warmup_steps,
        graphed=graphed(config, device),
        extra_params=(*images_tower.parameters(), log_scale),
        clip=None,
    )


def vae_trainer(config: TrainConfig, device: torch.device) -> Trainer:
    """The autoencoder: MSE + a small KL on its own reconstructions, and on spliced latents.

    For a ``splice_share`` of each batch, the sampled latents inside a random mask (boxes, blobs,
    objects, background; at the latent grid) are the next scene's, and the target is the two
    images joined along the same mask. The decoder thereby learns to keep what it is given: the
    latent blending and the inpainting hand it the input's latents outside the edited region
    and new ones inside.
    """
    vae = build_vae(config.vae_channels).to(device).train()
    # A whole-image splice is just the next scene.
    splice_masks = MaskSampler({kind: share for kind, share in config.mask_shares.items() if kind != "whole"}, device)

    def loss_fn(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        x = inputs["images"] * 2 - 1
        with bf16_autocast(device):
            posterior = vae.encode(x).latent_dist
            z = posterior.sample()
            latent_size = z.shape[-2:]
            masks = F.interpolate(splice_masks(inputs["masks"]), size=latent_size, mode="area").round()
            masks = masks * (torch.rand(len(x), 1, 1, 1, device=device) < config.splice_share)
            spliced = torch.lerp(z, z.roll(1, 0), masks.to(z.dtype))
            reconstruction = vae.decode(spliced).sample
        target = torch.lerp(x, x.roll(1, 0), F.interpolate(masks, size=x.shape[-2:], mode="nearest"))
        return F.mse_loss(reconstruction.float(), target) + config.kl_weight * posterior.kl().mean()

    return Trainer(
        "vae", vae, loss_fn, lr=config.vae_lr, total=config.vae_steps, warmup=config.warmup_steps, graphed=graphed(config, device), clip=None, weight_decay=0.0
    )


@torch.no_grad()
def set_latent_statistics(vae: AutoencoderKL, images: torch.Tensor) -> None:
    """The latents' scaling factor (1 / their std, as SD's 0.18215) and shift (their mean, as SD3's
    0.0609): SD 1.x pipelines scale the raw latents, SD3 pipelines shift then scale them."""
    latents = vae.encode(images * 2 - 1).latent_dist.mean.float()
    vae.register_to_config(scaling_factor=1.0 / latents.std().item(), shift_factor=latents.mean().item())


def train_classifier(
    config: TrainConfig, scenes: Iterator[Scenes], vae: AutoencoderKL, generator: torch.Generator, device: torch.device
) -> tuple[ObjectClassifier, list[tuple[int, float]]]:
    """Colour and shape of slot 0's object (always present), from crops with random padding.

    The crops are taken from ``classifier_pool`` autoencoded scenes (autoencoding once, then
    drawing batches from the pool, keeps this affordable on a CPU): generated and edited images are decoded
    latents, and a classifier trained on crisp renders alone mistook decoded circles for
    squares or triangles (31 % of autoencoded circles recognised, 100 % of rendered ones).
    """
    pool = [next(scenes) for _ in range(math.ceil(config.classifier_pool / config.batch_size))]
    images = torch.cat([autoencoded(vae, batch.images) for batch in pool])
    masks = torch.cat([batch.masks[:, 0] for batch in pool])
    colours = torch.cat([batch.layout.colour[:, 0] for batch in pool]).to(device)
    shapes = torch.cat([batch.layout.shape[:, 0] for batch in pool]).to(device)
    classifier = ObjectClassifier().to(device).train()
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=2e-3)
    losses = []
    for step in tqdm(range(config.classifier_steps), desc="classifier", mininterval=30):
        pick = torch.randint(len(images), (config.batch_size,), generator=generator).to(device)
        colour_logits, shape_logits = classifier(object_crops(images[pick], masks[pick], generator))
        loss = F.cross_entropy(colour_logits, colours[pick]) + F.cross_entropy(shape_logits, shapes[pick])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 50 == 0:
            losses.append((step, loss.detach()))
    return classifier.eval().requires_grad_(False), [(s, float(v)) for s, v in losses]


class Checkpoint:
    """The whole training state in one file, written after every stage (and every ``every`` denoiser
    steps): ``--resume`` continues from it. The random draws inside the steps restart from a seed
    derived from the step, so a resumed run is not bit-identical to an uninterrupted one."""

    def __init__(self, folder: Path | None) -> None:
        self.path = folder / "checkpoint.pt" if folder is not None else None
        self.state: dict = {}

    def load(self, folder: Path, config: TrainConfig) -> None:
        path = folder / "checkpoint.pt"
        if not path.is_file():
            raise FileNotFoundError(f"--resume {folder}: no checkpoint.pt there (written by --checkpoint {folder}).")
        self.state = torch.load(path, map_location="cpu", weights_only=False)
        saved = {k: v for k, v in self.state["config"].items() if not k.endswith("_steps")}
        ours = {k: v for k, v in _jsonable(asdict(config)).items() if not k.endswith("_steps")}
        if saved != ours:
            differ = sorted(k for k in ours if saved.get(k) != ours[k])
            raise ValueError(f"--resume {folder}: the checkpoint was trained with other settings ({', '.join(differ)}); only step counts may change.")

    def save(self, config: TrainConfig, **parts) -> None:
        self.state.update(parts, config=_jsonable(asdict(config)))
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        torch.save(self.state, temporary)
        temporary.replace(self.path)


def _jsonable(value):
    return json.loads(json.dumps(value))


def train(
    out: Path,
    config: TrainConfig,
    device: torch.device,
    *,
    evaluation: EvalSettings | None = None,
    archive_path: Path | None = None,
    deadline: float | None = None,
    checkpoint_dir: Path | None = None,
    resume: Path | None = None,
    checkpoint_every: int = 2000,
    time_each: bool = False,
    autoencoder_from: Path | None = None,
) -> dict:
    """Train every stage, save the three pipelines and the classifier, measure them, write training.json (and the archive).

    ``autoencoder_from``: a model folder of this command whose autoencoder and classifier are taken as they are
    (stages 2 and 3 skipped; their losses copied from its training.json), for new text encoders and denoisers
    on a known autoencoder."""
    clock = Clock(device)
    tokenizer = clip_tokenizer()
    tokens = CaptionTokenizer(tokenizer)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    checkpoint = Checkpoint(checkpoint_dir)
    if resume is not None:
        checkpoint.load(resume, config)
    done = checkpoint.state
    losses: dict[str, list] = dict(done.get("losses", {}))
    info: dict = {}

    def stream(stage: int, batch_size: int) -> SceneStream:
        return SceneStream(config, batch_size, config.seed * 100 + stage, tokens, device)

    def loop(stage: int, trainer: Trainer, batch_size: int, inputs_of: Callable[[Scenes], dict]) -> None:
        torch.manual_seed(config.seed * 100 + stage)
        scenes = stream(stage, batch_size)
        run_loop([trainer], lambda: inputs_of(next(scenes)), {trainer.name: lambda b: b}, clock, trainer.name, time_each=time_each)
        losses[trainer.name] = trainer.loss_history()

    # 1. Text encoder.
    text_trainer = text_encoder_trainer(config, device)
    if "text_encoder" in done:
        text_trainer.module.load_state_dict(done["text_encoder"])
    else:
        clock.timed("text_encoder", loop, 1, text_trainer, config.batch_size, lambda b: {"images": b.images, "ids": b.ids})
        checkpoint.save(config, text_encoder=text_trainer.module.state_dict(), losses=losses)
    text_encoder: CLIPTextModelWithProjection = text_trainer.finish()

    # 2. Autoencoder, then its latents' statistics; 3. classifier (or both from an earlier model: autoencoder_from).
    if autoencoder_from is not None and "vae" not in done:
        reused = _reused_autoencoder(autoencoder_from, device)
        losses.update(reused["losses"])
        checkpoint.save(
            config,
            vae={"weights": reused["vae"].state_dict(), "statistics": reused["statistics"]},
            classifier=reused["classifier"].state_dict(),
            losses=losses,
            autoencoder_from=str(autoencoder_from),
        )
    vae = vae_trainer(config, device)
    if "vae" in done or autoencoder_from is not None:
        vae.module.load_state_dict(checkpoint.state["vae"]["weights"])
        vae.module.register_to_config(**checkpoint.state["vae"]["statistics"])
    else:
        clock.timed("autoencoder", loop, 2, vae, config.vae_batch_size, lambda b: {"images": b.images, "masks": b.masks})
        set_latent_statistics(vae.module, next(stream(3, config.batch_size)).images)
        statistics = {k: vae.module.config[k] for k in ("scaling_factor", "shift_factor")}
        checkpoint.save(config, vae={"weights": vae.module.state_dict(), "statistics": statistics}, losses=losses)
    vae_model: AutoencoderKL = vae.finish()

    if "classifier" in checkpoint.state:
        classifier = ObjectClassifier().to(device)
        classifier.load_state_dict(checkpoint.state["classifier"])
        classifier.eval().requires_grad_(False)
    else:
        torch.manual_seed(config.seed * 100 + 4)
        generator = torch.Generator().manual_seed(config.seed * 100 + 4)
        classifier, losses["classifier"] = clock.timed("classifier", train_classifier, config, stream(4, config.batch_size), vae_model, generator, device)
        checkpoint.save(config, classifier=classifier.state_dict(), losses=losses)

    # 4. The denoisers, interleaved.
    @torch.no_grad()
    def text_states(ids: torch.Tensor) -> dict[str, torch.Tensor]:
        with bf16_autocast(device):
            output = text_encoder(ids, output_hidden_states=True)
        return {"context": output.last_hidden_state, "penultimate": output.hidden_states[-2], "pooled": output.text_embeds}

    trainers = denoiser_trainers(config, vae_model, text_states, tokens, device, text_encoder)
    scenes = stream(5, config.batch_size)
    saved = done.get("denoisers")
    if saved is not None:
        for trainer in trainers:
            trainer.load_state_dict(saved["trainers"][trainer.name])
        scenes.load_state_dict(saved["stream"])
    torch.manual_seed(config.seed * 100 + 5 + min(t.done for t in trainers))

    @torch.no_grad()
    def prepared(source: SceneStream = scenes) -> dict[str, torch.Tensor]:
        batch = next(source)
        with bf16_autocast(device):
            latents = denoiser_targets(vae_model.encode(batch.images * 2 - 1).latent_dist, config)
        return {"latents": latents, "images": batch.images, "objects": batch.masks, "ids": batch.ids, **text_states(batch.ids)}

    def save_denoisers() -> None:
        checkpoint.save(config, denoisers={"trainers": {t.name: t.state_dict() for t in trainers}, "stream": scenes.state_dict()}, losses=losses)

    if any(t.done < t.total for t in trainers):
        reserve = EVAL_RESERVE_S + (TWIN_RESERVE_S if config.twin_init == "base" else 0.0)
        info = clock.timed(
            "denoisers",
            run_loop,
            trainers,
            prepared,
            denoiser_inputs(config),
            clock,
            "denoisers",
            deadline,
            reserve,
            save_denoisers if checkpoint_dir else None,
            checkpoint_every,
            time_each,
        )
        if checkpoint_dir:
            save_denoisers()
    for trainer in trainers:
        losses[trainer.name] = trainer.loss_history()
    finished = {trainer.name: trainer.finish() for trainer in trainers}
    text_encoder.eval().requires_grad_(False)  # trained with the UNet (text_joint): its EMA weights are in it now

    # 5. The inpainting twin, fine-tuned from the UNet (unless it trained from scratch beside it).
    if "inpaint" not in finished:
        twin = twin_trainer(config, vae_model, text_states, tokens, device, base=finished["unet"])
        twin_scenes = stream(6, config.batch_size)
        info["twin"] = clock.timed("twin", run_loop, [twin], lambda: prepared(twin_scenes), denoiser_inputs(config), clock, "twin", deadline, EVAL_RESERVE_S)
        losses["inpaint"] = twin.loss_history()
        finished["inpaint"] = twin.finish()
        trainers.append(twin)
    unet, twin, dit = finished["unet"], finished["inpaint"], finished["dit"]

    # 5. Pipelines: saved in fp16, measured in fp32.
    pipes = assemble_pipelines(vae_model, text_encoder, tokenizer, unet, twin, dit)
    out.mkdir(parents=True, exist_ok=True)
    folders = save_pipelines(out, *(pipe.to(torch.float16) for pipe in pipes))
    report = {
        "config": _jsonable(asdict(config)),
        "device": _device_name(device),
        "torch": torch.__version__,
        "cuda_graphs": graphed(config, device),
        "seconds": clock.seconds,
        "ms_per_step": clock.ms_per_step,
        "steps_done": {t.name: t.done for t in trainers},
        **({"autoencoder_from": checkpoint.state["autoencoder_from"]} if "autoencoder_from" in checkpoint.state else {}),
        **info,
        "losses": losses,
    }
    report = clock.timed(
        "evaluation", evaluate_and_save, out, [pipe.to(torch.float32) for pipe in pipes], classifier, report, device, evaluation or EvalSettings()
    )
    report["seconds"]["total"] = round(clock.elapsed(), 1)
    (out / "training.json").write_text(json.dumps(report, indent=1))
    if archive_path is not None:
        parts = archive(folders, archive_path)
        sizes = ", ".join(f"{p} ({p.stat().st_size / 2**20:.1f} MiB)" for p in parts)
        print(f"[toy.train] archive: {sizes}; restore with `cat {archive_path}.* | tar -x -C {out.parent}`", flush=True)
    return report


def _reused_autoencoder(folder: Path, device: torch.device) -> dict:
    """The autoencoder (float32, with its latent statistics), the classifier and their losses of the model in ``folder``."""
    if not (folder / "vae").is_dir() or not (folder / "training.json").is_file():
        raise FileNotFoundError(f"--autoencoder-from {folder}: not a model folder of this command (no vae/ or training.json there).")
    vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32)
    losses = json.loads((folder / "training.json").read_text())["losses"]
    return {
        "vae": vae,
        "statistics": {k: vae.config[k] for k in ("scaling_factor", "shift_factor")},
        "classifier": load_classifier(folder, device),
        "losses": {k: losses[k] for k in ("vae", "classifier")},
    }


def assemble_pipelines(
    vae: AutoencoderKL, text_encoder: CLIPTextModelWithProjection, tokenizer, unet: UNet2DConditionModel, twin: UNet2DConditionModel, dit: SD3Transformer2DModel
) -> tuple[StableDiffusionPipeline, StableDiffusionInpaintPipeline, StableDiffusion3Pipeline]:
    """The three pipelines; SD 1.x's text encoder is the ``CLIPTextModel`` inside the one with projection."""
    clip = CLIPTextModel(text_encoder.config).to(text_encoder.device)
    clip.load_state_dict(text_encoder.text_model.state_dict())
    clip.eval().requires_grad_(False)
    sd = {"vae": vae, "text_encoder": clip, "tokenizer": tokenizer, "safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
    base = StableDiffusionPipeline(unet=unet, scheduler=PNDMScheduler(**SD14_SCHEDULER_CONFIG), **sd)
    inpaint = StableDiffusionInpaintPipeline(unet=twin, scheduler=PNDMScheduler(**SD14_SCHEDULER_CONFIG), **sd)
    sd3 = StableDiffusion3Pipeline(
        transformer=dit,
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder,
        tokenizer_2=tokenizer,
        text_encoder_3=None,
        tokenizer_3=None,
    )
    for pipe in (base, inpaint, sd3):
        pipe.set_progress_bar_config(disable=True)
    return base, inpaint, sd3


def evaluate_and_save(out: Path, pipes: list, classifier: ObjectClassifier, report: dict, device: torch.device, settings: EvalSettings) -> dict:
    """Every measurement of :mod:`benchmarks.toy.training.evaluation`, the sample grids and the classifier's weights."""
    base, inpaint, dit = (pipe.to(device) for pipe in pipes)
    report["evaluation"] = asdict(settings)
    report["autoencoder"] = autoencoder_quality(base.vae, device, settings.autoencoder_scenes)
    report["classifier_accuracy"] = classifier_accuracy(classifier, base.vae, device, settings.classifier_scenes)

    def sd_sampler(prompts: list[str], generator: torch.Generator) -> torch.Tensor:
        return base(
            prompts, num_inference_steps=settings.sd_steps, guidance_scale=7.5, height=IMAGE_SIZE, width=IMAGE_SIZE, generator=generator, output_type="pt"
        ).images

    def sd3_sampler(prompts: list[str], generator: torch.Generator) -> torch.Tensor:
        return dit(
            prompts, num_inference_steps=settings.dit_steps, guidance_scale=7.0, height=IMAGE_SIZE, width=IMAGE_SIZE, generator=generator, output_type="pt"
        ).images

    report["generator_accuracy"], samples = generator_accuracy(sd_sampler, classifier, device, settings.per_prompt)
    report["generator_accuracy"]["sampling"] = f"PNDM, {settings.sd_steps} steps, guidance 7.5"
    save_image(samples, out / "samples.png", nrow=8)  # 4 samples per prompt: colour x shape, gray background
    report["dit_generator_accuracy"], samples = generator_accuracy(sd3_sampler, classifier, device, settings.per_prompt)
    report["dit_generator_accuracy"]["sampling"] = f"flow-matching Euler, {settings.dit_steps} steps, guidance 7.0"
    save_image(samples, sibling(out, "dit") / "samples.png", nrow=8)
    report["inpainting"], grid = inpainting_quality(inpaint, classifier, device, settings.inpaint_edits, settings.inpaint_steps)
    report["inpainting"]["condition_loss"] = condition_loss(inpaint, device, settings.condition_scenes)
    save_image(grid, sibling(out, "inpaint") / "samples.png", nrow=8)  # rows: inputs, regions, outputs
    (out / "classifier").mkdir(exist_ok=True)
    save_file({k: v.half() if v.is_floating_point() else v for k, v in classifier.state_dict().items()}, out / "classifier" / "model.safetensors")
    return report


def retrain_classifier(out: Path, config: TrainConfig, device: torch.device, evaluation: EvalSettings | None = None) -> dict:
    """Train only the classifier again, against the saved model's autoencoder, and re-measure the generators.

    For a better measurement of existing generators: the weights of the pipelines are not touched.
    """
    report = json.loads((out / "training.json").read_text())
    options = {"torch_dtype": torch.float32}
    base = StableDiffusionPipeline.from_pretrained(out, safety_checker=None, requires_safety_checker=False, **options)
    pipes = [
        base,
        StableDiffusionInpaintPipeline.from_pretrained(sibling(out, "inpaint"), safety_checker=None, requires_safety_checker=False, **options),
        StableDiffusion3Pipeline.from_pretrained(sibling(out, "dit"), **WITHOUT_T5, **options),
    ]
    for pipe in pipes:
        pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(config.seed + 2)
    torch.manual_seed(config.seed + 2)
    scenes = SceneStream(config, config.batch_size, config.seed + 2, CaptionTokenizer(base.tokenizer), device)
    started = time.perf_counter()
    classifier, report["losses"]["classifier"] = train_classifier(config, scenes, base.vae.to(device), generator, device)
    report["classifier_retrained"] = {
        "device": _device_name(device),
        "seconds": round(time.perf_counter() - started, 1),
        "seed": config.seed + 2,
        "steps": config.classifier_steps,
        "batch_size": config.batch_size,
    }
    report = evaluate_and_save(out, pipes, classifier, report, device, evaluation or EvalSettings())
    (out / "training.json").write_text(json.dumps(report, indent=1))
    return report


def finetune_twin(
    out: Path,
    config: TrainConfig,
    device: torch.device,
    evaluation: EvalSettings | None = None,
    archive_path: Path | None = None,
    deadline: float | None = None,
    further: bool = False,
) -> dict:
    """Fine-tune only the inpainting twin again, from the saved UNet of ``out`` (stage 5 of :func:`train`), and re-measure it.

    For a model whose twin was trained another way (v3's first run trained it from scratch): the base
    pipeline, the DiT and the classifier are not touched; the twin's folder and training.json are rewritten.
    ``further``: start from the saved twin instead, to train it for more steps (a new warm-up and schedule;
    training.json's twin entry keeps the earlier runs and counts the steps of all of them).
    """
    clock = Clock(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    report = json.loads((out / "training.json").read_text())
    base = StableDiffusionPipeline.from_pretrained(out, safety_checker=None, requires_safety_checker=False, torch_dtype=torch.float32).to(device)
    base.set_progress_bar_config(disable=True)
    vae, text_encoder, unet = (m.eval().requires_grad_(False) for m in (base.vae, base.text_encoder, base.unet))
    tokens = CaptionTokenizer(base.tokenizer)

    @torch.no_grad()
    def text_states(ids: torch.Tensor) -> dict[str, torch.Tensor]:
        with bf16_autocast(device):
            return {"context": text_encoder(ids).last_hidden_state}

    scenes = SceneStream(config, config.batch_size, config.seed * 100 + 6, tokens, device)

    @torch.no_grad()
    def prepared() -> dict[str, torch.Tensor]:
        batch = next(scenes)
        with bf16_autocast(device):
            latents = denoiser_targets(vae.encode(batch.images * 2 - 1).latent_dist, config)
        return {"latents": latents, "images": batch.images, "objects": batch.masks, **text_states(batch.ids)}

    earlier = report.get("twin") if further else None
    if further and earlier is None:
        raise ValueError(f"{out / 'training.json'} records no twin fine-tuned from the UNet; train one with --twin-only first.")
    start = UNet2DConditionModel.from_pretrained(sibling(out, "inpaint") / "unet", torch_dtype=torch.float32).to(device) if further else unet
    torch.manual_seed(config.seed * 100 + 6 + (earlier["steps"] if earlier else 0))  # a further run draws new scenes and masks
    trainer = twin_trainer(config, vae, text_states, tokens, device, base=start)
    info = clock.timed("twin", run_loop, [trainer], prepared, denoiser_inputs(config), clock, "twin", deadline, EVAL_RESERVE_S)
    twin = trainer.finish()
    inpaint = StableDiffusionInpaintPipeline(
        unet=twin,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=base.tokenizer,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
        scheduler=PNDMScheduler(**SD14_SCHEDULER_CONFIG),
    )
    inpaint.set_progress_bar_config(disable=True)
    folder = save_twin(out, inpaint.to(torch.float16))
    classifier = ObjectClassifier().to(device)
    classifier.load_state_dict(load_file(out / "classifier" / "model.safetensors"))
    classifier.float().eval().requires_grad_(False)
    settings = evaluation or EvalSettings()
    report["inpainting"], grid = inpainting_quality(inpaint.to(torch.float32), classifier, device, settings.inpaint_edits, settings.inpaint_steps)
    report["inpainting"]["condition_loss"] = condition_loss(inpaint, device, settings.condition_scenes)
    save_image(grid, folder / "samples.png", nrow=8)
    report["losses"]["inpaint"] = trainer.loss_history()
    # The base's configuration stays the model's; the twin's own runs are recorded beside it.
    settings_used = {
        k: getattr(config, k)
        for k in (
            "seed",
            "batch_size",
            "inpaint_steps",
            "twin_lr",
            "twin_loss",
            "twin_noise_offset",
            "warmup_steps",
            "ema_decay",
            "mask_shares",
            "denoiser_latents",
        )
    }
    run = {
        "init": "twin" if further else "base",
        "command": ("--twin-only --twin-further" if further else "--twin-only")
        + (f" --twin-noise-offset {config.twin_noise_offset}" if config.twin_noise_offset else ""),
        "device": _device_name(device),
        "seconds": round(clock.seconds["twin"], 1),
        "ms_per_step": clock.ms_per_step.get("twin"),
        "steps": trainer.done,
        "config": _jsonable(settings_used),
        **info,
    }
    runs = (earlier.get("runs", [earlier]) if earlier else []) + [run]  # a record from before "runs" is its one run
    report["twin"] = {**run, "steps": sum(r["steps"] for r in runs), "runs": runs}
    report["steps_done"]["inpaint"] = report["twin"]["steps"]
    (out / "training.json").write_text(json.dumps(report, indent=1))
    if archive_path is not None:
        archive([folder], archive_path)
    return report


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _configs_from_args(args: argparse.Namespace) -> tuple[TrainConfig, TrainConfig]:
    """The configuration to run and the full one (they differ with ``--smoke``, which shortens every stage)."""
    full = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)})
    return (replace(full, **SMOKE_STEPS) if args.smoke else full), full


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("models/toy"), help="the base folder; the twin and the DiT go beside it (<out>-inpaint, <out>-dit)")
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        value = getattr(defaults, f.name)
        if isinstance(value, bool):
            parser.add_argument(f"--{f.name.replace('_', '-')}", action=argparse.BooleanOptionalAction, default=value)
        elif isinstance(value, (int, float, str)):
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(value), default=value)
        elif isinstance(value, tuple):
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=lambda s: tuple(int(v) for v in s.split(",")), default=value)
    parser.add_argument("--eval-per-prompt", type=int, default=8, help="generated images per single-object prompt")
    parser.add_argument("--archive", type=Path, default=None, help="also write the three folders as one tar in parts of <= 15 MiB: ARCHIVE.00, ...")
    parser.add_argument(
        "--deadline",
        type=float,
        default=None,
        help=f"seconds from the start by which training must end, {EVAL_RESERVE_S:.0f} s before it the denoisers' schedule is cut to fit",
    )
    parser.add_argument("--checkpoint", type=Path, default=None, help="write checkpoint.pt (the whole training state) here after every stage")
    parser.add_argument("--checkpoint-every", type=int, default=2000, help="denoiser steps between checkpoints")
    parser.add_argument("--resume", type=Path, default=None, help="continue from the checkpoint.pt in this folder (step counts may grow)")
    parser.add_argument(
        "--autoencoder-from", type=Path, default=None, help="take the autoencoder and the classifier of this model folder instead of training them"
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="every stage for a few steps at full batch sizes, each model's step timed; prints the projected time of the full run",
    )
    parser.add_argument("--classifier-only", action="store_true", help="retrain only the classifier of the model in --out and re-evaluate")
    parser.add_argument("--twin-only", action="store_true", help="fine-tune only the inpainting twin from the UNet of the model in --out and re-measure it")
    parser.add_argument("--twin-further", action="store_true", help="with --twin-only: train the saved twin further instead of starting again from the UNet")
    args = parser.parse_args(argv)
    if args.twin_further and not args.twin_only:
        parser.error("--twin-further trains the saved twin further; it needs --twin-only.")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config, full = _configs_from_args(args)
    evaluation = EvalSettings(per_prompt=1 if args.smoke else args.eval_per_prompt)
    if args.classifier_only:
        report = retrain_classifier(args.out, config, device, evaluation)
    elif args.twin_only:
        report = finetune_twin(args.out, config, device, evaluation, args.archive, args.deadline, further=args.twin_further)
    else:
        report = train(
            args.out,
            config,
            device,
            evaluation=evaluation,
            archive_path=args.archive,
            deadline=args.deadline,
            checkpoint_dir=args.checkpoint,
            resume=args.resume,
            checkpoint_every=args.checkpoint_every,
            time_each=args.smoke,
            autoencoder_from=args.autoencoder_from,
        )
        if args.smoke:
            report["projected_full_run"] = projected_full_run(report, full)
    print(json.dumps({k: v for k, v in report.items() if k not in ("losses", "generator_accuracy", "dit_generator_accuracy")}, indent=1))
    print(summary_line(report), flush=True)


def summary_line(report: dict) -> str:
    """The run's headline numbers on one line (the last line of the run's log)."""
    autoencoder, inpainting = report["autoencoder"], report["inpainting"]
    return (
        f"[toy.train] generator accuracy {report['generator_accuracy']['accuracy']:.1%} (UNet), "
        f"{report['dit_generator_accuracy']['accuracy']:.1%} (DiT); twin: edit success {inpainting['edit_success']:.1%}, "
        f"background PSNR {inpainting['background_psnr']:.1f} dB; reconstruction PSNR {autoencoder['reconstruction_psnr']:.1f} dB, "
        f"splice PSNR {autoencoder['splice_psnr']:.1f} dB; steps {report['steps_done']}; {report['seconds']['total']:.0f} s"
    )


def projected_full_run(report: dict, full: TrainConfig) -> dict:
    """The seconds a run at ``full``'s step counts would take: each stage's measured seconds (capture
    and warm-up included) plus its per-step time for the steps the smoke run did not take, and the
    same fixed costs (start, evaluation, saving). An upper bound: the smoke run synchronises around every step."""
    ms, measured, smoke = report["ms_per_step"], report["seconds"], report["config"]

    def more(name: str) -> int:
        return getattr(full, name) - smoke[name]

    joint = [name for name in DENOISERS if f"denoisers/{name}" in ms]  # the twin is a stage of its own when fine-tuned
    each = {name: ms[f"denoisers/{name}"] for name in joint}
    preparation = max(ms["denoisers"] - sum(each.values()), 0.0)  # rendering, encoding, text states per batch
    seconds = {
        "text_encoder": measured["text_encoder"] + ms["text_encoder"] * more("text_steps") / 1e3,
        "autoencoder": measured["autoencoder"] + ms["vae"] * more("vae_steps") / 1e3,
        "classifier": measured["classifier"],
        "denoisers": measured["denoisers"] + (sum(each[n] * more(f"{n}_steps") for n in joint) + preparation * max(more(f"{n}_steps") for n in joint)) / 1e3,
    }
    if "twin" in measured:
        seconds["twin"] = measured["twin"] + ms["twin"] * more("inpaint_steps") / 1e3
    fixed = measured["total"] - sum(measured[name] for name in seconds)
    return {"seconds": {k: round(v, 1) for k, v in seconds.items()}, "fixed_seconds": round(fixed, 1), "total_seconds": round(sum(seconds.values()) + fixed, 1)}


if __name__ == "__main__":
    main()
