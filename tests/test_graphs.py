"""The UNet fast path's plumbing on a CPU: graph keys, static buffers, the attention capture
inside graphs, with the capture step replaced by plain calls (tests/fakes.PlainGraphs); and,
on CUDA only (``pytest -m cuda``), real CUDA graphs against eager."""

from __future__ import annotations

import numpy
import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0
from fakes import PlainGraphs

from baselines import DiffEdit, OracleInpaint, SDEdit
from benchmarks.models.tiny import tiny_pipelines
from benchmarks.models.tiny_families import tiny_family_pipelines
from instdiffedit import InstDiffEdit
from instdiffedit.attention import capture_cross_attention
from instdiffedit.backbones import denoiser_of
from instdiffedit.fast_paths import (
    DEFAULT_FAST_PATH,
    accelerate,
    check_fast_path,
    denoiser_runner,
    resolve_fast_path,
    set_fast_path,
)

STEPS = 10  # strength 0.5: 5 guided steps
INPAINT_STEPS = 4


@pytest.fixture
def pipes(_private_cache):
    """A fresh copy of the tiny model per test: fast paths are a property of its UNets."""
    return tiny_pipelines(_private_cache, device="cpu")


def _graphed(pipes) -> dict[str, PlainGraphs]:
    capturers = {"base": PlainGraphs(), "inpaint": PlainGraphs()}
    set_fast_path(pipes.base.unet, "graphs", capturer=capturers["base"])
    set_fast_path(pipes.inpaint.unet, "graphs", capturer=capturers["inpaint"])
    return capturers


def _editors(pipes):
    return {
        "instdiffedit": InstDiffEdit(pipes.base, pipes.inpaint, num_inference_steps=STEPS, inpaint_steps=INPAINT_STEPS),
        "diffedit": DiffEdit(pipes.base, pipes.inpaint, num_noises=2, num_inference_steps=STEPS, inpaint_steps=INPAINT_STEPS),
        "sdedit": SDEdit(pipes.base, num_inference_steps=STEPS),
        "oracle": OracleInpaint(pipes.base, pipes.inpaint, inpaint_steps=INPAINT_STEPS),
    }


def _edit(editor, item, seed: int = 11):
    return editor.edit(item.image, target=item.target, source=item.source, mask=item.gt_mask, generator=torch.Generator().manual_seed(seed))


def _same_image(a, b) -> bool:
    return numpy.array_equal(numpy.asarray(a), numpy.asarray(b))


def test_every_method_gets_the_eager_masks_and_images_through_graphs(tiny, pipes, item) -> None:
    eager = {name: _edit(editor, item) for name, editor in _editors(tiny).items()}
    capturers = _graphed(pipes)
    for name, editor in _editors(pipes).items():
        for attempt in ("captured", "replayed"):
            result = _edit(editor, item)
            assert _same_image(result.image, eager[name].image), (name, attempt)
            assert (result.mask is None) == (eager[name].mask is None)
            if result.mask is not None:
                assert torch.equal(result.mask, eager[name].mask), (name, attempt)
            assert result.denoiser_evals == eager[name].denoiser_evals, "the counter hears replays"
    assert all(graph.replays for capturer in capturers.values() for graph in capturer.graphs)


@pytest.mark.parametrize("family", ["sdxl", "sd3", "flux"])
def test_every_family_gets_the_eager_masks_and_images_through_graphs(tiny_family, _private_cache, item, family: str) -> None:
    """SDXL's extra conditioning, SD 3.x's and FLUX.1's transformers (FLUX's packing inside the
    graph) and the joint-attention capture writing in place, replayed."""
    eager = {name: _edit(editor, item) for name, editor in _editors(tiny_family(family)).items()}
    pipes = tiny_family_pipelines(family, _private_cache, device="cpu")
    capturers = [PlainGraphs() for pipe in (pipes.base, pipes.inpaint) if pipe is not None]
    for pipe, capturer in zip((pipes.base, pipes.inpaint), capturers):
        set_fast_path(denoiser_of(pipe), "graphs", capturer=capturer)
    for name, editor in _editors(pipes).items():
        for attempt in ("captured", "replayed"):
            result = _edit(editor, item)
            assert _same_image(result.image, eager[name].image), (name, attempt)
            if result.mask is not None:
                assert torch.equal(result.mask, eager[name].mask), (name, attempt)
            assert result.denoiser_evals == eager[name].denoiser_evals
    assert all(graph.replays for capturer in capturers for graph in capturer.graphs)


def test_one_graph_per_call_signature_and_attention_processor_set(pipes, item) -> None:
    capturers = _graphed(pipes)
    editors = _editors(pipes)
    _edit(editors["instdiffedit"], item)
    # The mask loop: 6 rows with the attention capture; the inpainting: 2 rows.
    assert len(capturers["base"].graphs) == 1 and len(capturers["inpaint"].graphs) == 1
    _edit(editors["instdiffedit"], item, seed=12)
    assert len(capturers["base"].graphs) == 1 and len(capturers["inpaint"].graphs) == 1, "a second edit captures nothing"
    _edit(editors["sdedit"], item)  # 2 rows, plain attention: a new signature
    _edit(editors["oracle"], item)  # the inpainting's signature again
    assert len(capturers["base"].graphs) == 2 and len(capturers["inpaint"].graphs) == 1
    editors["instdiffedit"].edit_batch([item.image] * 2, targets=[item.target] * 2, generators=[torch.Generator().manual_seed(s) for s in (1, 2)])
    assert len(capturers["base"].graphs) == 3 and len(capturers["inpaint"].graphs) == 2  # 12 and 4 rows
    assert denoiser_runner(pipes.base.unet).graph_count == 3


def test_a_replay_reads_the_static_inputs_and_returns_a_copy_of_the_static_output(pipes) -> None:
    unet = pipes.base.unet
    runner = set_fast_path(unet, "graphs", capturer=(capturer := PlainGraphs()))
    generator = torch.Generator().manual_seed(0)
    inputs = [(torch.randn(2, 4, 32, 32, generator=generator), torch.tensor(500.0 + 100 * k), torch.randn(2, 77, 32, generator=generator)) for k in range(2)]
    with torch.no_grad():
        expected = [unet(sample, t, encoder_hidden_states=context).sample for sample, t, context in inputs]
    first = runner(*inputs[0])
    second = runner(*inputs[1])
    (graph,) = capturer.graphs
    assert torch.equal(first, expected[0]) and torch.equal(second, expected[1])
    assert graph.replays == 2 and capturer.warmups == 1
    second.zero_()
    assert torch.equal(graph.output, expected[1]), "callers get a copy, never the graph's own output"


def test_the_attention_capture_writes_in_place_inside_graphs_and_reads_outside(pipes) -> None:
    unet = pipes.base.unet
    runner = set_fast_path(unet, "graphs", capturer=PlainGraphs())
    generator = torch.Generator().manual_seed(0)
    calls = [(torch.randn(4, 4, 32, 32, generator=generator), torch.tensor(t), torch.randn(4, 77, 32, generator=generator)) for t in (900.0, 400.0)]
    with capture_cross_attention(unet, (32, 32), downsample=4) as store:
        with torch.no_grad():  # eager reference: direct calls prepare the store through a hook
            expected = []
            for sample, t, context in calls:
                unet(sample, t, encoder_hidden_states=context)
                expected.append(store.take())
        buffers = []
        for (sample, t, context), maps in zip(calls, expected, strict=True):
            runner(sample, t, context)
            buffers.append(store.slots.data_ptr())
            torch.testing.assert_close(store.take(), maps, rtol=0, atol=0)
        with pytest.raises(RuntimeError, match="No cross-attention"):
            store.take()  # each call's maps are read once
    assert len(set(buffers)) == 1, "every replay writes into the same preallocated buffer"
    assert not torch.equal(expected[0], expected[1])


def test_moving_the_weights_drops_the_graphs(pipes, item) -> None:
    capturers = _graphed(pipes)
    editor = _editors(pipes)["sdedit"]
    _edit(editor, item)
    assert denoiser_runner(pipes.base.unet).graph_count == 1
    accelerate(pipes.base.unet, channels_last=True)  # new weight storage: the captured addresses are stale
    _edit(editor, item)
    assert denoiser_runner(pipes.base.unet).graph_count == 1 and len(capturers["base"].graphs) == 2


class _Recording(AttnProcessor2_0):
    """A processor with a Python side effect, which a replay would skip."""

    def __call__(self, attn, hidden_states, *args, **kwargs):
        self.calls = getattr(self, "calls", 0) + 1
        return super().__call__(attn, hidden_states, *args, **kwargs)


def test_processors_with_python_side_effects_are_refused_in_graphs(pipes) -> None:
    unet = pipes.base.unet
    runner = set_fast_path(unet, "graphs", capturer=PlainGraphs())
    name = next(iter(unet.attn_processors))
    unet.set_attn_processor({**unet.attn_processors, name: _Recording()})
    sample, t, context = torch.zeros(2, 4, 32, 32), torch.tensor(1.0), torch.zeros(2, 77, 32)
    with pytest.raises(ValueError, match=f"{name.removesuffix('.processor')} has _Recording.*fast_path='eager'"):
        runner(sample, t, context)
    set_fast_path(unet, "eager")
    runner(sample, t, context)  # eager runs any processor


class _Syncing(AttnProcessor2_0):
    """Declares itself graph-safe but reads a value on the host, which a capture forbids."""

    graph_safe = True

    def __call__(self, attn, hidden_states, *args, **kwargs):
        hidden_states.sum().item()
        return super().__call__(attn, hidden_states, *args, **kwargs)


def test_a_host_sync_during_a_capture_fails_with_the_way_out(pipes) -> None:
    unet = pipes.base.unet
    runner = set_fast_path(unet, "graphs", capturer=PlainGraphs())
    unet.set_attn_processor({**unet.attn_processors, next(iter(unet.attn_processors)): _Syncing()})
    with pytest.raises(RuntimeError, match=r"Capturing the UNet's graphs forward for inputs \(2, 4, 32, 32\) failed .*host sync: item.*fast_path='eager'"):
        runner(torch.zeros(2, 4, 32, 32), torch.tensor(1.0), torch.zeros(2, 77, 32))


def test_graphs_on_a_cpu_without_a_capturer_are_refused(pipes) -> None:
    with pytest.raises(ValueError, match="needs the UNet on a CUDA device"):
        set_fast_path(pipes.base.unet, "graphs")
    with pytest.raises(ValueError, match="Unknown fast path 'turbo'"):
        check_fast_path("turbo")


def test_auto_means_graphs_on_cuda_and_eager_elsewhere() -> None:
    assert DEFAULT_FAST_PATH == "auto"
    assert resolve_fast_path("auto", "cuda:0") == "graphs" and resolve_fast_path("auto", "cpu") == "eager"
    assert resolve_fast_path("compiled", "cpu") == "compiled"


def test_a_plain_cpu_run_calls_the_unet_eagerly(tiny, item) -> None:
    runner = denoiser_runner(tiny.base.unet)
    assert runner.mode == "auto"
    InstDiffEdit(tiny.base, None, num_inference_steps=4, output="decode").edit(item.image, target=item.target)
    assert runner.graph_count == 0


# -- CUDA only -------------------------------------------------------------------------------


HALF = {"sd": torch.float16, "sdxl": torch.float16, "sd3": torch.bfloat16, "flux": torch.bfloat16}


def cuda_pipes(cache, family: str, fast_path: str):
    """A family's tiny model on CUDA (``"sd"``: the tiny SD model)."""
    if family == "sd":
        return tiny_pipelines(cache, device="cuda", fast_path=fast_path)
    return tiny_family_pipelines(family, cache, device="cuda", fast_path=fast_path)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("half", [False, True])
@pytest.mark.parametrize("family", list(HALF))
def test_cuda_graphs_give_the_eager_masks_and_images(_private_cache, item, family: str, half: bool) -> None:
    pipes = cuda_pipes(_private_cache, family, "eager")
    pairs = [pipe for pipe in (pipes.base, pipes.inpaint) if pipe is not None]
    if half:
        for pipe in pairs:
            pipe.to(HALF[family])
    eager = {name: _edit(editor, item) for name, editor in _editors(pipes).items()}
    for pipe in pairs:
        set_fast_path(denoiser_of(pipe), "graphs")
    for name, editor in _editors(pipes).items():
        for attempt in ("captured", "replayed"):
            result = _edit(editor, item)
            difference = numpy.abs(numpy.asarray(result.image, float) - numpy.asarray(eager[name].image, float))
            assert difference.max() <= 2, (name, attempt, difference.max())
            if result.mask is not None:
                assert (result.mask != eager[name].mask).float().mean() <= 0.01, (name, attempt)
    # the mask loop with its attention capture, DiffEdit's rows, SDEdit's rows
    assert denoiser_runner(denoiser_of(pipes.base)).graph_count == 3
