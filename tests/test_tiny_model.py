"""Behaviour of the tiny offline Stable Diffusion model used by the tests and smoke runs."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import StableDiffusionInpaintPipeline

from benchmarks.models import tiny
from benchmarks.models.loading import Pipelines
from benchmarks.models.tiny import (
    TINY_MODEL_NAME,
    build_tiny_pipelines,
    clip_tokenizer,
    tiny_pipelines,
)

BOS, EOS = 49406, 49407


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def pipes(cache_dir) -> Pipelines:
    return tiny_pipelines(cache_dir, device="cpu")


@pytest.fixture(scope="module")
def tokenizer():
    return clip_tokenizer()


class TestClipTokenizer:
    def test_encodes_a_prompt_with_the_real_clip_ids(self, tokenizer):
        assert tokenizer("a photo of a cat").input_ids == [BOS, 320, 1125, 539, 320, 2368, EOS]

    def test_vocabulary_follows_clip_layout(self, tokenizer):
        # 256 byte tokens (printable latin-1 first), the same 256 with "</w>", then one token
        # per merge in file order ("i n" is the first merge), then the two specials.
        ids = tokenizer.convert_tokens_to_ids
        assert len(tokenizer) == 49408
        assert ids("!") == 0
        assert ids("a</w>") == 256 + (ord("a") - ord("!"))
        assert ids("in") == 512
        assert ids("photo</w>") == 1125
        assert ids("cat</w>") == 2368
        assert ids(["<|startoftext|>", "<|endoftext|>"]) == [BOS, EOS]

    def test_rare_words_split_into_several_tokens(self, tokenizer):
        prompt = "Shiba Inu dog"
        assert len(tokenizer.tokenize(prompt)) > len(prompt.split())

    def test_pads_to_77_with_end_of_text_like_sd(self, tokenizer):
        assert tokenizer.model_max_length == 77
        ids = tokenizer("a cat", padding="max_length", max_length=77).input_ids
        assert ids == [BOS, 320, 2368] + [EOS] * 74


class TestTinyPipelines:
    def test_generates_a_64px_image(self, pipes):
        out = pipes.base(
            "a photo of a cat",
            num_inference_steps=2,
            generator=torch.Generator().manual_seed(0),
            output_type="np",
        )
        assert out.images.shape == (1, 64, 64, 3)
        assert np.isfinite(out.images).all()

    def test_cross_attention_at_latent_2_and_4_in_both_directions(self, pipes):
        unet = pipes.base.unet
        query_tokens: dict[str, int] = {}

        def record(name):
            def hook(module, args, kwargs):
                hidden = args[0] if args else kwargs["hidden_states"]
                query_tokens[name] = hidden.shape[1]

            return hook

        handles = [module.register_forward_pre_hook(record(name), with_kwargs=True) for name, module in unet.named_modules() if name.endswith("attn2")]
        latents = torch.randn(1, 4, 32, 32)
        text = torch.randn(1, 77, unet.config.cross_attention_dim)
        with torch.no_grad():
            unet(latents, 10, encoder_hidden_states=text)
        for handle in handles:
            handle.remove()

        def sizes(prefix: str) -> set[int]:
            return {n for name, n in query_tokens.items() if name.startswith(prefix)}

        assert sizes("down_blocks") == {16 * 16, 8 * 8}
        assert sizes("up_blocks") == {8 * 8, 16 * 16}
        assert sizes("mid_block") == {8 * 8}

    def test_uses_sd14_noise_schedule(self, pipes):
        config = pipes.base.scheduler.config
        assert (config.beta_start, config.beta_end) == (0.00085, 0.012)
        assert config.beta_schedule == "scaled_linear"
        assert config.num_train_timesteps == 1000
        assert config.steps_offset == 1

    def test_inpainting_unet_takes_9_channels(self, pipes):
        assert pipes.inpaint.unet.config.in_channels == 9
        out = pipes.inpaint(
            prompt="a dog",
            image=PIL.Image.new("RGB", (64, 64), "gray"),
            mask_image=PIL.Image.new("L", (64, 64), 255),
            num_inference_steps=2,
            generator=torch.Generator().manual_seed(0),
        )
        assert out.images[0].size == (64, 64)

    def test_can_skip_the_inpainting_pipeline(self, pipes, cache_dir):
        assert tiny_pipelines(cache_dir, device="cpu", inpaint=False).inpaint is None


class TestBuild:
    def test_same_seed_gives_identical_weights(self):
        first, second = build_tiny_pipelines(seed=0), build_tiny_pipelines(seed=0)
        for a, b in zip(first, second):
            for name in ("unet", "vae", "text_encoder"):
                _assert_same_weights(getattr(a, name), getattr(b, name))

    def test_different_seeds_give_different_weights(self):
        a, _ = build_tiny_pipelines(seed=0)
        b, _ = build_tiny_pipelines(seed=1)
        assert not torch.equal(a.unet.conv_in.weight, b.unet.conv_in.weight)

    def test_base_and_inpainting_share_vae_text_encoder_and_tokenizer(self):
        base, inpaint = build_tiny_pipelines()
        assert base.vae is inpaint.vae
        assert base.text_encoder is inpaint.text_encoder
        assert base.tokenizer is inpaint.tokenizer

    def test_leaves_the_global_rng_alone(self):
        state = torch.get_rng_state()
        build_tiny_pipelines(seed=3)
        assert torch.equal(torch.get_rng_state(), state)


class TestCache:
    def test_second_call_loads_the_saved_folder_without_rebuilding(self, pipes, cache_dir, monkeypatch):
        folder = cache_dir / TINY_MODEL_NAME
        index = folder / "base" / "model_index.json"
        mtime = index.stat().st_mtime_ns

        def fail(*args, **kwargs):
            raise AssertionError("the cached model was rebuilt")

        monkeypatch.setattr(tiny, "build_tiny_pipelines", fail)
        again = tiny_pipelines(cache_dir, device="cpu")

        assert index.stat().st_mtime_ns == mtime
        assert again.base.config._name_or_path == str(folder / "base")
        assert again.inpaint.config._name_or_path == str(folder / "inpaint")
        _assert_same_weights(again.base.unet, pipes.base.unet)

    def test_saved_weights_equal_the_built_ones(self, pipes):
        base, inpaint = build_tiny_pipelines()
        _assert_same_weights(pipes.base.unet, base.unet)
        _assert_same_weights(pipes.inpaint.unet, inpaint.unet)
        _assert_same_weights(pipes.base.text_encoder, base.text_encoder)

    def test_a_crash_while_saving_leaves_no_folder_behind(self, tmp_path, monkeypatch):
        def crash(*args, **kwargs):
            raise RuntimeError("disk full")

        monkeypatch.setattr(StableDiffusionInpaintPipeline, "save_pretrained", crash)
        with pytest.raises(RuntimeError, match="disk full"):
            tiny_pipelines(tmp_path, device="cpu")
        assert list(tmp_path.iterdir()) == []

    def test_default_cache_dir_comes_from_the_environment(self, tmp_path, monkeypatch):
        monkeypatch.setenv("INSTDIFFEDIT_CACHE", str(tmp_path))
        tiny_pipelines(device="cpu", inpaint=False)
        assert (tmp_path / TINY_MODEL_NAME / "base" / "model_index.json").is_file()


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
