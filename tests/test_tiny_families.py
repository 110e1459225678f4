"""The tiny offline SDXL, SD 3.5 and FLUX.1 models: real architectures, hub layouts, seconds on a CPU."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import (
    FluxFillPipeline,
    FluxPipeline,
    StableDiffusion3Pipeline,
    StableDiffusionXLInpaintPipeline,
    StableDiffusionXLPipeline,
)
from diffusers.models.normalization import RMSNorm
from transformers import CLIPTextModel, CLIPTextModelWithProjection, T5EncoderModel

from benchmarks.models import tiny_families
from benchmarks.models.t5_tokenizer import t5_tokenizer
from benchmarks.models.tiny_families import (
    IMAGE_SIZE,
    TINY_FAMILY_VERSION,
    build_tiny_flux,
    build_tiny_sdxl,
    tiny_family_pipelines,
)

# The folders of stabilityai/stable-diffusion-xl-base-1.0 (and of the SDXL inpainting repository),
# stabilityai/stable-diffusion-3.5-medium and black-forest-labs/FLUX.1-dev (and FLUX.1-Fill-dev).
HUB_FOLDERS = {
    "sdxl": {"scheduler", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "unet", "vae"},
    "sd3": {
        "scheduler",
        "text_encoder",
        "text_encoder_2",
        "text_encoder_3",
        "tokenizer",
        "tokenizer_2",
        "tokenizer_3",
        "transformer",
        "vae",
    },
    "flux": {"scheduler", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "transformer", "vae"},
}
PIPELINES = {
    "sdxl": (StableDiffusionXLPipeline, StableDiffusionXLInpaintPipeline),
    "sd3": (StableDiffusion3Pipeline, None),
    "flux": (FluxPipeline, FluxFillPipeline),
}
FAMILIES = list(PIPELINES)


@pytest.fixture(scope="module")
def load(_private_cache):
    """Each family's tiny pipelines, loaded once for this module."""
    torch.set_num_threads(min(2, torch.get_num_threads()))
    loaded = {}

    def get(family: str):
        if family not in loaded:
            loaded[family] = tiny_family_pipelines(family, _private_cache, device="cpu")
        return loaded[family]

    return get


@pytest.fixture(params=FAMILIES)
def pipes(request, load):
    return load(request.param)


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


class TestSampling:
    def test_the_base_pipeline_samples_a_64px_image(self, pipes) -> None:
        out = pipes.base(
            "a photo of a cat",
            height=IMAGE_SIZE,
            width=IMAGE_SIZE,
            num_inference_steps=2,
            generator=_generator(),
            output_type="np",
        )
        assert out.images.shape == (1, IMAGE_SIZE, IMAGE_SIZE, 3)
        assert np.isfinite(out.images).all()

    def test_the_inpainting_twin_inpaints_where_the_family_has_one(self, pipes) -> None:
        base_cls, twin_cls = PIPELINES[pipes.family]
        assert type(pipes.base) is base_cls
        if twin_cls is None:
            assert pipes.inpaint is None
            return
        assert type(pipes.inpaint) is twin_cls
        out = pipes.inpaint(
            prompt="a dog",
            image=PIL.Image.new("RGB", (IMAGE_SIZE,) * 2, "gray"),
            mask_image=PIL.Image.new("L", (IMAGE_SIZE,) * 2, 255),
            height=IMAGE_SIZE,
            width=IMAGE_SIZE,
            num_inference_steps=2,
            generator=_generator(),
            output_type="np",
        )
        assert out.images.shape == (1, IMAGE_SIZE, IMAGE_SIZE, 3)

    def test_the_pipelines_carry_their_family_and_resolution(self, pipes) -> None:
        assert pipes.family in FAMILIES and pipes.resolution == IMAGE_SIZE


class TestArchitectures:
    def test_sdxl_has_two_clip_encoders_and_text_time_conditioning(self, load) -> None:
        pipes = load("sdxl")
        base, twin = pipes.base, pipes.inpaint
        assert type(base.text_encoder) is CLIPTextModel
        assert type(base.text_encoder_2) is CLIPTextModelWithProjection
        unet = base.unet.config
        assert unet.addition_embed_type == "text_time"
        widths = base.text_encoder.config.hidden_size + base.text_encoder_2.config.hidden_size
        assert unet.cross_attention_dim == widths  # the two encoders' hidden states side by side
        assert unet.projection_class_embeddings_input_dim == 6 * unet.addition_time_embed_dim + base.text_encoder_2.config.projection_dim
        assert twin.unet.config.in_channels == 9 and unet.in_channels == 4
        assert base.tokenizer_2.pad_token == "!" and base.tokenizer.pad_token == "<|endoftext|>"

    def test_sd3_has_joint_attention_with_qk_norms_and_three_encoders(self, load) -> None:
        base = load("sd3").base
        assert type(base.text_encoder) is type(base.text_encoder_2) is CLIPTextModelWithProjection
        assert type(base.text_encoder_3) is T5EncoderModel
        block = base.transformer.transformer_blocks[0]
        assert block.attn.add_k_proj is not None  # text keys join the image keys
        assert isinstance(block.attn.norm_q, RMSNorm) and isinstance(block.attn.norm_added_k, RMSNorm)
        assert block.attn2 is not None  # SD 3.5's dual-attention block
        assert base.transformer.config.patch_size == 2

    def test_flux_has_double_and_single_stream_blocks_and_the_guidance_embedding(self, load) -> None:
        pipes = load("flux")
        config = pipes.base.transformer.config
        assert config.num_layers >= 1 and config.num_single_layers >= 1
        assert config.guidance_embeds
        assert type(pipes.base.text_encoder) is CLIPTextModel and type(pipes.base.text_encoder_2) is T5EncoderModel
        # Fill: packed latents + packed masked-image latents + the mask folded into each 2x2 patch.
        vae_scale = pipes.inpaint.vae_scale_factor
        assert pipes.inpaint.transformer.config.in_channels == 2 * config.in_channels + 4 * vae_scale**2
        assert pipes.inpaint.transformer.config.out_channels == config.in_channels


class TestLayout:
    @pytest.mark.parametrize("family", FAMILIES)
    def test_saved_folders_follow_the_hub_repositories(self, family, load, _private_cache) -> None:
        load(family)
        root = _private_cache / f"tiny-{family}-{TINY_FAMILY_VERSION}"
        twins = {"inpaint"} if PIPELINES[family][1] else set()
        assert {p.name for p in root.iterdir()} == {"base", *twins}
        for name in ("base", *twins):
            folder = root / name
            assert {p.name for p in folder.iterdir() if p.is_dir()} == HUB_FOLDERS[family]
            assert (folder / "model_index.json").is_file()

    def test_a_cached_model_is_loaded_not_rebuilt(self, load, _private_cache, monkeypatch) -> None:
        load("flux")

        def fail(seed: int = 0):
            raise AssertionError("the cached model was rebuilt")

        monkeypatch.setitem(tiny_families.TINY_BUILDERS, "flux", fail)
        again = tiny_family_pipelines("flux", _private_cache, device="cpu", inpaint=False)
        assert again.base.config._name_or_path == str(_private_cache / f"tiny-flux-{TINY_FAMILY_VERSION}" / "base")

    def test_an_unknown_family_is_an_error(self, tmp_path) -> None:
        with pytest.raises(ValueError, match="Unknown tiny model family 'sd15'; expected one of: sdxl, sd3, flux"):
            tiny_family_pipelines("sd15", tmp_path)


class TestBuild:
    def test_same_seed_gives_identical_weights_and_leaves_the_global_rng_alone(self) -> None:
        state = torch.get_rng_state()
        first, second = build_tiny_flux(seed=0), build_tiny_flux(seed=0)
        assert torch.equal(torch.get_rng_state(), state)
        for a, b in zip(first, second):
            for name in ("transformer", "vae", "text_encoder", "text_encoder_2"):
                sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
                assert all(torch.equal(sa[k], sb[k]) for k in sa), name

    def test_base_and_twin_share_vae_and_text_encoders(self) -> None:
        base, inpaint = build_tiny_sdxl()
        assert base.vae is inpaint.vae and base.text_encoder_2 is inpaint.text_encoder_2


class TestT5Tokenizer:
    def test_follows_t5s_conventions(self) -> None:
        tokenizer = t5_tokenizer()
        ids = tokenizer("a photo of a cat", padding="max_length", max_length=10).input_ids
        assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
        assert tokenizer.bos_token_id is None  # no start token
        end = ids.index(1)
        assert end > 0 and ids[end + 1 :] == [0] * (len(ids) - end - 1)  # </s> appended, then padding
        assert tokenizer.model_max_length == 512
        assert tokenizer.convert_tokens_to_ids("<extra_id_0>") == len(tokenizer) - 1

    def test_knows_every_character_and_splits_rare_words(self) -> None:
        tokenizer = t5_tokenizer()
        ids = tokenizer("A Xylophone, 42!", add_special_tokens=False).input_ids
        assert tokenizer.unk_token_id not in ids
        assert len(tokenizer.tokenize("xylophone")) > 1 and len(tokenizer.tokenize("dog")) == 1

    def test_is_the_same_on_every_build(self) -> None:
        assert t5_tokenizer().get_vocab() == t5_tokenizer().get_vocab()
