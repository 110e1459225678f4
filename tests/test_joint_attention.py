"""Joint-attention capture on the tiny SD 3.5 and FLUX.1 transformers, checked against a brute-force softmax.

The reference probabilities come from the queries and keys the layers hand to their attention
kernels (recorded by a spy on the kernel), so they include the qk-norms and FLUX's rotary
embeddings exactly as the model applies them.
"""

from __future__ import annotations

import types
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from diffusers import FluxPipeline
from diffusers.models import attention_processor
from diffusers.models.transformers import transformer_flux

from benchmarks.models.tiny_families import tiny_family_pipelines
from instdiffedit import joint_attention
from instdiffedit.joint_attention import (
    capture_joint_attention,
    joint_attention_layers,
    query_chunk,
    token_grid,
)

LATENT = (32, 32)
GRID = (16, 16)  # both families: 2 x 2 latents per token
N_IMAGE = GRID[0] * GRID[1]


@dataclass
class Case:
    """A transformer, one call's inputs, and where image and text tokens sit in its joint sequence."""

    transformer: torch.nn.Module
    inputs: dict
    n_text: int
    text_first: bool  # FLUX: [text, image]; SD3: [image, text]
    cfg: bool  # inputs are [uncond | cond]

    def run(self) -> torch.Tensor:
        with torch.no_grad():
            return self.transformer(**self.inputs).sample


@pytest.fixture(scope="module")
def sd3(_private_cache) -> Case:
    pipes = tiny_family_pipelines("sd3", _private_cache, device="cpu")
    transformer = pipes.base.transformer
    gen = torch.Generator().manual_seed(0)
    n_text = 77 + 256
    inputs = {
        "hidden_states": torch.randn(4, 16, *LATENT, generator=gen),  # [2 uncond | 2 cond]
        "encoder_hidden_states": torch.randn(4, n_text, transformer.config.joint_attention_dim, generator=gen),
        "pooled_projections": torch.randn(4, transformer.config.pooled_projection_dim, generator=gen),
        "timestep": torch.full((4,), 500.0),
    }
    return Case(transformer, inputs, n_text, text_first=False, cfg=True)


@pytest.fixture(scope="module")
def flux(_private_cache) -> Case:
    pipes = tiny_family_pipelines("flux", _private_cache, device="cpu", inpaint=False)
    transformer = pipes.base.transformer
    gen = torch.Generator().manual_seed(0)
    n_text = 512
    inputs = {
        "hidden_states": torch.randn(2, N_IMAGE, transformer.config.in_channels, generator=gen),
        "encoder_hidden_states": torch.randn(2, n_text, transformer.config.joint_attention_dim, generator=gen),
        "pooled_projections": torch.randn(2, transformer.config.pooled_projection_dim, generator=gen),
        "timestep": torch.full((2,), 0.6),
        "guidance": torch.full((2,), 3.5),
        "img_ids": FluxPipeline._prepare_latent_image_ids(2, *GRID, "cpu", torch.float32),
        "txt_ids": torch.zeros(n_text, 3),
    }
    return Case(transformer, inputs, n_text, text_first=True, cfg=False)


@pytest.fixture(params=["sd3", "flux"])
def case(request) -> Case:
    return request.getfixturevalue(request.param)


def brute_force(case: Case, monkeypatch: pytest.MonkeyPatch, layers: list[int] | None = None, renormalise: bool = False) -> torch.Tensor:
    """Image->text probabilities of the full softmax (rows x N_image x L), averaged over heads and
    layers; with ``renormalise``, each head's rows rescaled to sum to one over the text keys."""
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []  # (query, key), rows x heads x tokens x width

    def spy_sdpa(query, key, value, *args, **kwargs):
        calls.append((query, key))
        return F.scaled_dot_product_attention(query, key, value, *args, **kwargs)

    def spy_dispatch(query, key, value, **kwargs):  # FLUX's kernel call takes rows x tokens x heads x width
        calls.append((query.transpose(1, 2), key.transpose(1, 2)))
        return real_dispatch(query, key, value, **kwargs)

    real_dispatch = transformer_flux.dispatch_attention_fn
    with monkeypatch.context() as patch:
        patch.setattr(attention_processor, "F", types.SimpleNamespace(scaled_dot_product_attention=spy_sdpa))
        patch.setattr(transformer_flux, "dispatch_attention_fn", spy_dispatch)
        case.run()
    joint = [(q, k) for q, k in calls if k.shape[2] == N_IMAGE + case.n_text]  # not SD3.5's image-only attn2
    assert len(joint) == len(joint_attention_layers(case.transformer))
    chosen = joint if layers is None else [joint[i] for i in layers]
    maps = []
    for query, key in chosen:
        probs = (query.double() @ key.double().transpose(-1, -2) * query.shape[-1] ** -0.5).softmax(dim=-1)
        image = slice(case.n_text, None) if case.text_first else slice(0, N_IMAGE)
        text = slice(0, case.n_text) if case.text_first else slice(N_IMAGE, None)
        block = probs[:, :, image, text]
        if renormalise:
            block = block / block.sum(dim=-1, keepdim=True)
        maps.append(block.mean(dim=1))
    maps = torch.stack(maps).mean(dim=0).float()
    return maps[maps.shape[0] // 2 :] if case.cfg else maps


def captured(case: Case, **options) -> torch.Tensor:
    with capture_joint_attention(case.transformer, GRID, conditional_only=case.cfg, **options) as store:
        case.run()
        return store.take()


def test_the_joint_layers_are_the_text_image_attentions_in_execution_order(sd3, flux) -> None:
    # SD 3.5: every block's joint attn, never the dual-attention block's image-only attn2.
    assert joint_attention_layers(sd3.transformer) == [f"transformer_blocks.{i}.attn.processor" for i in range(3)]
    assert "transformer_blocks.0.attn2.processor" in sd3.transformer.attn_processors
    assert joint_attention_layers(flux.transformer) == [
        "transformer_blocks.0.attn.processor",
        "transformer_blocks.1.attn.processor",
        "single_transformer_blocks.0.attn.processor",
        "single_transformer_blocks.1.attn.processor",
    ]


def test_the_token_grid_is_latent_over_two_for_both_families(sd3, flux) -> None:
    assert token_grid(sd3.transformer, LATENT) == GRID
    assert token_grid(flux.transformer, LATENT) == GRID
    assert token_grid(flux.transformer, (128, 128)) == (64, 64)  # 1024 px: H/16 x W/16
    with pytest.raises(ValueError, match="not divisible"):
        token_grid(sd3.transformer, (33, 32))


def test_captured_maps_equal_the_full_softmax_over_image_and_text_keys(case, monkeypatch) -> None:
    maps = captured(case)
    rows = 2
    assert maps.shape == (rows, *GRID, case.n_text) and maps.dtype == torch.float32
    torch.testing.assert_close(maps.flatten(1, 2), brute_force(case, monkeypatch), rtol=1e-4, atol=1e-7)


def test_text_key_renormalisation_rescales_each_heads_text_block_to_one(case, monkeypatch) -> None:
    maps = captured(case, normaliser="text_keys").flatten(1, 2)
    torch.testing.assert_close(maps, brute_force(case, monkeypatch, renormalise=True), rtol=1e-4, atol=1e-7)


def test_rows_hold_the_text_share_of_the_mass_or_all_of_it_when_renormalised(case, monkeypatch) -> None:
    reference = brute_force(case, monkeypatch)
    exact = captured(case).flatten(1, 2)
    torch.testing.assert_close(exact.sum(-1), reference.sum(-1), rtol=1e-4, atol=1e-6)
    assert (exact.sum(-1) < 1 - 1e-3).all()  # the image keys take the rest
    renormalised = captured(case, normaliser="text_keys").flatten(1, 2)
    torch.testing.assert_close(renormalised.sum(-1), torch.ones(renormalised.shape[:2]))


def test_a_subset_of_layers_averages_those_layers_only(flux, monkeypatch) -> None:
    layers = [1, 2]  # the second double-stream block and the first single-stream block
    maps = captured(flux, layers=layers)
    torch.testing.assert_close(maps.flatten(1, 2), brute_force(flux, monkeypatch, layers), rtol=1e-4, atol=1e-7)


def test_small_query_chunks_give_the_same_maps(case) -> None:
    whole = captured(case)
    one_query_at_a_time = captured(case, chunk_bytes=1)
    torch.testing.assert_close(one_query_at_a_time, whole, rtol=1e-5, atol=1e-8)


def test_a_column_limit_keeps_the_first_columns_rounded_up_to_the_bucket_with_the_same_probabilities(case) -> None:
    every = captured(case)
    kept = captured(case, columns=5)  # 5 -> one bucket of 64 columns
    assert kept.shape[-1] == joint_attention.COLUMN_BUCKET
    assert torch.equal(kept, every[..., : joint_attention.COLUMN_BUCKET])  # the log-sum-exp still covers every key
    assert captured(case, columns=65).shape[-1] == 2 * joint_attention.COLUMN_BUCKET
    assert captured(case, columns=10_000).shape[-1] == case.n_text


def test_a_column_limit_does_not_apply_to_text_key_renormalisation(case) -> None:
    # Its softmax runs over every text score, so the store keeps them all.
    assert torch.equal(captured(case, normaliser="text_keys", columns=5), captured(case, normaliser="text_keys"))


def test_a_chunk_holds_as_many_queries_as_the_budget_allows() -> None:
    # FLUX.1 at 1024 px: 24 heads, 512 text keys (only the text scores are formed); 256 MiB of float32 scores.
    assert query_chunk(256 * 2**20, 24 * 512) == 5461
    assert query_chunk(1, 10) == 1


def test_capture_changes_nothing_in_the_output_and_restores_the_processors(case) -> None:
    before = dict(case.transformer.attn_processors)
    plain = case.run()
    with capture_joint_attention(case.transformer, GRID, conditional_only=case.cfg):
        with_capture = case.run()
    assert torch.equal(plain, with_capture)
    after = case.transformer.attn_processors
    assert after.keys() == before.keys() and all(after[k] is before[k] for k in before)


def test_the_capture_is_the_layers_own_attention_one_kernel_call_and_one_projection_each(case, monkeypatch) -> None:
    kernel_calls = []
    fused = joint_attention.attention_with_log_normaliser

    def counting(query, key, value):
        kernel_calls.append(query.shape)
        return fused(query, key, value)

    def no_second_pass(*args, **kwargs):
        raise AssertionError("a captured layer ran another attention kernel")

    projections = []
    layers = [case.transformer.get_submodule(name.removesuffix(".processor")) for name in joint_attention_layers(case.transformer)]
    hooks = [layer.to_q.register_forward_hook(lambda *_: projections.append(1)) for layer in layers]
    monkeypatch.setattr(joint_attention, "attention_with_log_normaliser", counting)
    try:
        with capture_joint_attention(case.transformer, GRID, conditional_only=case.cfg):
            # FLUX's only attention layers are the captured joint ones; SD 3.5's image-only attn2 keeps its kernel.
            monkeypatch.setattr(transformer_flux, "dispatch_attention_fn", no_second_pass)
            case.run()
    finally:
        for hook in hooks:
            hook.remove()
    assert len(kernel_calls) == len(layers)
    assert len(projections) == len(layers)  # each layer's queries projected once, by the layer


def test_a_layer_running_another_processor_is_refused_by_name(flux) -> None:
    name = joint_attention_layers(flux.transformer)[0]
    original = flux.transformer.attn_processors

    class Custom(transformer_flux.FluxAttnProcessor):
        pass

    flux.transformer.set_attn_processor({**original, name: Custom()})
    try:
        with pytest.raises(TypeError, match=rf"{name} \(Custom\)"), capture_joint_attention(flux.transformer, GRID):
            pass
        with capture_joint_attention(flux.transformer, GRID, layers=[1]):  # other layers still capture
            pass
    finally:
        flux.transformer.set_attn_processor(dict(original))


def test_processors_are_restored_when_the_block_raises(case) -> None:
    before = dict(case.transformer.attn_processors)
    with pytest.raises(RuntimeError, match="boom"), capture_joint_attention(case.transformer, GRID):
        raise RuntimeError("boom")
    assert all(case.transformer.attn_processors[k] is before[k] for k in before)


def test_capturing_processors_are_reused_across_captures(case) -> None:
    with capture_joint_attention(case.transformer, GRID, conditional_only=case.cfg) as first:
        wrapped = dict(case.transformer.attn_processors)
    with capture_joint_attention(case.transformer, GRID, conditional_only=case.cfg) as second:
        again = dict(case.transformer.attn_processors)
    assert first is second
    assert all(again[name] is wrapped[name] for name in joint_attention_layers(case.transformer))


def test_a_grid_that_does_not_match_the_image_tokens_is_an_error(sd3) -> None:
    with pytest.raises(ValueError, match="256 image tokens but the capture grid holds 64"), capture_joint_attention(sd3.transformer, (8, 8)):
        sd3.run()


def test_out_of_range_layers_and_unknown_normalisers_are_errors(flux) -> None:
    out_of_range = pytest.raises(ValueError, match=r"indices \[4\] are out of range: the transformer has 4")
    with out_of_range, capture_joint_attention(flux.transformer, GRID, layers=[0, 4]):
        pass
    with pytest.raises(ValueError, match="Unknown normaliser 'text'"), capture_joint_attention(flux.transformer, GRID, normaliser="text"):
        pass


def test_taking_maps_before_any_call_is_an_error(flux) -> None:
    with capture_joint_attention(flux.transformer, GRID) as store, pytest.raises(RuntimeError, match="No joint attention"):
        store.take()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("family", ["sd3", "flux"])
def test_on_cuda_in_bfloat16_a_column_limit_keeps_the_first_columns_of_the_full_capture(family: str, _private_cache, request) -> None:
    cpu = request.getfixturevalue(family)
    transformer = tiny_family_pipelines(family, _private_cache, device="cuda", inpaint=False).base.transformer.to(torch.bfloat16)
    inputs = {k: v.to("cuda", torch.bfloat16 if v.is_floating_point() and k not in ("img_ids", "txt_ids") else v.dtype) for k, v in cpu.inputs.items()}
    case = Case(transformer, inputs, cpu.n_text, cpu.text_first, cpu.cfg)
    every = captured(case)
    kept = captured(case, columns=5)
    torch.testing.assert_close(kept, every[..., : joint_attention.COLUMN_BUCKET], rtol=1e-5, atol=1e-8)
