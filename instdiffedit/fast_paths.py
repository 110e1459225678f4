"""The denoiser fast paths: every denoiser call of the shared diffusion steps, eager or replayed from
CUDA graphs, and the model-level speed-ups applied with them (:func:`accelerate`: the fast path and
``channels_last``). Both leave every result the same and are choices for a model's modules, shared
by every method that uses the model, so they are applied once where the model is loaded
(``benchmarks.models.load_pretrained``, config keys ``model.fast_path`` and ``model.channels_last``),
never by a method.

The denoiser is a backbone's UNet (SD 1.x/2.x, SDXL) or transformer (SD 3.x, FLUX.1); "UNet"
in the names below stands for either. At one edit's batch sizes a Stable Diffusion UNet call
is bound by the host launching its ~1,000 kernels, not by the GPU running them. A CUDA graph
of the whole forward turns those launches into one. :class:`DenoiserRunner` keeps one graph per
call signature (the shapes, dtypes and devices of its input tensors: the latents, the
timestep, the text embeddings and the family's further conditioning, such as SDXL's pooled
text embedding and size ids or FLUX.1's guidance) and per set of attention processors (so
attention capture on and off are different graphs). How the tensors are handed to the model
is the runner's *forward*, bound by the backbone (:meth:`DenoiserRunner.bind`); it may also
reshape them (FLUX.1 packs 2 x 2 latent patches into tokens inside it), so the reshaping is
replayed with the model. The first call of a signature is captured: a warm-up forward on a side
stream, then the capture on that stream, every graph of a runner sharing one memory pool;
each call copies its inputs into the graph's static input buffers, replays the graph and
returns a copy of its static output.

A replay repeats what the forward did on the device at capture time, nothing it did in
Python. Only attention processors whose every effect is on the device may be captured:
diffusers' plain ones, and processors that declare ``graph_safe`` (the cross-attention
capture writes its maps into preallocated buffers, see :mod:`instdiffedit.attention`). The
scheduler step, the mask update and all other per-step work run between the replays, as in
eager mode, and nothing in a denoising loop waits for the device.

Modes, a model-level choice (:func:`set_fast_path`; config key ``model.fast_path``):

- ``"graphs"``: the eager forward, captured into CUDA graphs (CUDA only).
- ``"compiled"``: the forward compiled by ``torch.compile`` (inductor's fused kernels, static
  shapes), captured into the same graphs on CUDA; on a CPU, the compiled forward alone.
- ``"eager"``: plain calls.
- ``"auto"`` (default): ``"graphs"`` on CUDA, ``"eager"`` elsewhere.

Results do not depend on the mode beyond floating-point effects (graphs replay the very
kernels of the eager forward), so it stays out of a run's identity.
"""

from __future__ import annotations

import functools
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from diffusers.models.attention import AttentionModuleMixin
from diffusers.models.attention_processor import (
    Attention,
    AttnProcessor,
    AttnProcessor2_0,
    JointAttnProcessor2_0,
)
from diffusers.models.transformers.transformer_flux import FluxAttnProcessor
from torch.utils.hooks import RemovableHandle

FastPath = Literal["auto", "graphs", "compiled", "eager"]
FAST_PATHS: tuple[str, ...] = ("auto", "graphs", "compiled", "eager")
DEFAULT_FAST_PATH: FastPath = "auto"

Listener = Callable[..., None]
"""Called with a call's tensors, ``(sample, timestep, context, *conditioning)``, before every call a runner serves."""

Forward = Callable[..., torch.Tensor]
"""``forward(model, sample, timestep, context, *conditioning)``: the model's prediction for one call."""

# diffusers' processors whose forward only launches kernels: no Python state, no host syncs.
_PLAIN_PROCESSORS = (AttnProcessor, AttnProcessor2_0, JointAttnProcessor2_0, FluxAttnProcessor)

# A compiled forward is specialised per UNet, call signature and processor set; a benchmark of
# every method meets a dozen of them, more than dynamo's default limit.
RECOMPILE_LIMIT = 64


def check_fast_path(mode: str) -> FastPath:
    """``mode`` if it names a fast path, else a ValueError listing them."""
    if mode not in FAST_PATHS:
        raise ValueError(f"Unknown fast path {mode!r}; choose one of {', '.join(FAST_PATHS)}.")
    return mode  # type: ignore[return-value]


def resolve_fast_path(mode: str, device: torch.device | str) -> str:
    """The mode a UNet on ``device`` runs in: ``"auto"`` is graphs on CUDA, eager elsewhere."""
    check_fast_path(mode)
    if mode == "auto":
        return "graphs" if torch.device(device).type == "cuda" else "eager"
    return mode


def is_graph_safe(processor: object) -> bool:
    """Whether an attention processor's every effect is on the device (so a graph replays it whole)."""
    return type(processor) in _PLAIN_PROCESSORS or getattr(processor, "graph_safe", False) is True


class Graph(Protocol):
    """A captured forward: ``replay()`` recomputes ``output`` from the static inputs, in place."""

    output: torch.Tensor

    def replay(self) -> None: ...


class Capturer(Protocol):
    """Makes :class:`Graph` objects: runs ``warmups`` (the first eagerly), then captures ``forward``."""

    def capture(self, forward: Callable[[], torch.Tensor], warmups: Sequence[Callable[[], object]]) -> Graph: ...


@dataclass
class _CudaGraph:
    graph: torch.cuda.CUDAGraph
    output: torch.Tensor

    def replay(self) -> None:
        self.graph.replay()


class CudaGraphs:
    """CUDA graph capture on one side stream, all graphs sharing one memory pool.

    The warm-ups run on the capture stream itself (lazily created per-stream library state,
    such as cuBLAS workspaces, must exist before a capture). The pool is shared safely because
    a runner's graphs replay one at a time on one stream and every graph's output stays alive
    with its graph: a later capture may place its output in an earlier graph's scratch memory,
    which is why callers get a copy of the output, taken before the next replay. Capture is
    thread-local: another thread's CUDA calls cannot invalidate it.
    """

    def __init__(self) -> None:
        self.stream = torch.cuda.Stream()
        self.pool = torch.cuda.graph_pool_handle()

    def capture(self, forward: Callable[[], torch.Tensor], warmups: Sequence[Callable[[], object]]) -> Graph:
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            for warmup in warmups:
                warmup()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool, stream=self.stream, capture_error_mode="thread_local"):
            output = forward()
        torch.cuda.current_stream().wait_stream(self.stream)
        return _CudaGraph(graph, output)


@dataclass
class _Entry:
    """One captured signature: its static inputs, its graph, and the processors it was captured with."""

    inputs: tuple[torch.Tensor, ...]
    graph: Graph
    processors: tuple[object, ...]  # held so that the ids in the key stay theirs


def _signature(tensor: torch.Tensor) -> tuple:
    return tensor.shape, tensor.dtype, tensor.device


def unet_forward(unet: torch.nn.Module, sample: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """An SD 1.x/2.x UNet's noise prediction: the forward a runner has until a backbone binds another."""
    return unet.forward(sample, timestep, encoder_hidden_states=context).sample


@functools.cache
def _compiled(forward: Forward) -> Callable:
    """One ``torch.compile`` of each forward for every model (dynamo keeps an entry per model and signature)."""
    config = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):  # renamed in torch 2.6; set whichever exists
        if hasattr(config, name) and getattr(config, name) < RECOMPILE_LIMIT:
            setattr(config, name, RECOMPILE_LIMIT)
    return torch.compile(forward, dynamic=False)


class DenoiserRunner:
    """How the shared diffusion steps call one denoiser: ``runner(sample, timestep, context,
    *conditioning)`` is ``forward(model, sample, timestep, context, *conditioning)``, in the
    runner's fast path; the forward is :func:`unet_forward` until a backbone binds its own.

    Calls go to the model's ``forward`` directly, never through the module's ``__call__``: its
    forward hooks do not see them (a replay runs no Python at all); :meth:`listen` sees every
    call. Every input must be a tensor, the timestep one on the model's device (a Python number
    would be copied from the host at every call, and captured as a constant).

    Moving or converting the model's weights (``.to(...)``, channels_last) drops its graphs.
    """

    def __init__(self, unet: torch.nn.Module, mode: FastPath = DEFAULT_FAST_PATH, capturer: Capturer | None = None) -> None:
        self._unet = weakref.ref(unet)  # the registry maps the UNet to its runner: no strong reference back
        self._attention = [(name, m) for name, m in unet.named_modules() if isinstance(m, (Attention, AttentionModuleMixin))]
        self._listeners: OrderedDict[int, Listener] = OrderedDict()
        self._graphs: dict[tuple, _Entry] = {}
        self._weights: tuple | None = None
        self._cuda: CudaGraphs | None = None
        self.forward: Forward = unet_forward
        self.mode: FastPath = DEFAULT_FAST_PATH
        self.capturer: Capturer | None = None
        self.set_mode(mode, capturer)

    @property
    def unet(self) -> torch.nn.Module:
        unet = self._unet()
        if unet is None:
            raise RuntimeError("The UNet of this runner no longer exists.")
        return unet

    def set_mode(self, mode: FastPath, capturer: Capturer | None = None) -> None:
        """Switch modes, dropping every graph. ``capturer`` replaces CUDA graph capture on any
        device (the tests' plain calls); without one, graphs are CUDA graphs, on CUDA only."""
        check_fast_path(mode)
        if mode == "graphs" and capturer is None and self.unet.device.type != "cuda":
            raise ValueError(f"fast_path='graphs' needs the UNet on a CUDA device; it is on {self.unet.device}. Use 'auto' or 'eager'.")
        self.mode, self.capturer = mode, capturer
        self.clear()

    def bind(self, forward: Forward) -> None:
        """Call the model with ``forward`` from now on (a backbone binds its family's); a new one drops the graphs."""
        if forward is not self.forward:
            self.forward = forward
            self.clear()

    def clear(self) -> None:
        """Drop every graph and its memory pool (the next call of each signature captures again)."""
        self._graphs.clear()
        self._cuda = None

    @property
    def graph_count(self) -> int:
        return len(self._graphs)

    def listen(self, listener: Listener) -> RemovableHandle:
        """Call ``listener(sample, timestep, context, *conditioning)`` before every call; ``.remove()`` the handle to stop."""
        handle = RemovableHandle(self._listeners)
        self._listeners[handle.id] = listener
        return handle

    def processors(self) -> tuple[object, ...]:
        """The attention processors in module order (a graph's key holds them by identity)."""
        return tuple(module.processor for _, module in self._attention)

    def set_processors(self, processors: Sequence[object]) -> None:
        """Put back processors taken by :meth:`processors` (e.g. to replay recorded calls)."""
        for (_, module), processor in zip(self._attention, processors, strict=True):
            module.set_processor(processor)

    @torch.no_grad()
    def __call__(self, sample: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor, *conditioning: torch.Tensor) -> torch.Tensor:
        inputs = (sample, timestep, context, *conditioning)
        if not all(isinstance(tensor, torch.Tensor) for tensor in inputs):
            kinds = ", ".join(type(tensor).__name__ for tensor in inputs)
            raise TypeError(f"DenoiserRunner takes tensors only, the timestep one on the model's device; got {kinds}.")
        for listener in tuple(self._listeners.values()):
            listener(*inputs)
        if self._graphed(sample.device):
            return self._replay(inputs)
        forward = _compiled(self.forward) if self.mode == "compiled" else self.forward
        return forward(self.unet, *inputs)

    def _graphed(self, device: torch.device) -> bool:
        if self.mode == "eager":
            return False
        if self.capturer is not None or device.type == "cuda":
            return True
        if self.mode == "graphs":
            raise RuntimeError(f"fast_path='graphs' needs CUDA, but the call's tensors are on {device}.")
        return False  # auto and compiled on a CPU: no graphs

    def _replay(self, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        self._drop_graphs_if_weights_moved()
        key = (tuple(map(_signature, inputs)), tuple(map(id, self.processors())))
        entry = self._graphs.get(key)
        if entry is None:
            entry = self._graphs[key] = self._capture(inputs)
        for static, value in zip(entry.inputs, inputs, strict=True):
            static.copy_(value)
        entry.graph.replay()
        return entry.graph.output.clone()

    def _drop_graphs_if_weights_moved(self) -> None:
        first = next(self.unet.parameters())
        weights = (first.data_ptr(), first.dtype, first.device)
        if weights != self._weights:
            self.clear()
            self._weights = weights

    def _capture(self, inputs: tuple[torch.Tensor, ...]) -> _Entry:
        processors = self.processors()
        unsafe = [(name, type(p).__name__) for (name, _), p in zip(self._attention, processors) if not is_graph_safe(p)]
        if unsafe:
            name, kind = unsafe[0]
            raise ValueError(
                f"CUDA graphs replay only attention processors without Python side effects; {name} has {kind} "
                f"({len(unsafe)} such layers). Use fast_path='eager' with these processors."
            )
        unet, model_forward = self.unet, self.forward
        inputs = tuple(tensor.clone() for tensor in inputs)

        def eager() -> torch.Tensor:
            return model_forward(unet, *inputs)

        if self.mode == "compiled":
            compiled = _compiled(model_forward)

            def forward() -> torch.Tensor:
                return compiled(unet, *inputs)

            # The eager call first: it makes lazily allocated state (the capture's buffers) before
            # dynamo traces, so the traced code never allocates it; the compiled call compiles and
            # autotunes, which must not happen during a capture.
            warmups = [eager, forward]
        else:
            forward, warmups = eager, [eager]
        capturer = self.capturer
        if capturer is None:
            capturer = self._cuda = self._cuda or CudaGraphs()
        try:
            graph = capturer.capture(forward, warmups)
        except RuntimeError as error:
            raise RuntimeError(
                f"Capturing the UNet's {self.mode} forward for inputs {tuple(inputs[0].shape)} failed ({error}); "
                "fast_path='eager' (config model.fast_path=eager) runs without graphs."
            ) from error
        return _Entry(inputs, graph, processors)


_RUNNERS: weakref.WeakKeyDictionary[torch.nn.Module, DenoiserRunner] = weakref.WeakKeyDictionary()


def denoiser_runner(unet: torch.nn.Module) -> DenoiserRunner:
    """The runner of ``unet`` (made at first use, in the default mode); one per UNet."""
    runner = _RUNNERS.get(unet)
    if runner is None:
        runner = _RUNNERS[unet] = DenoiserRunner(unet)
    return runner


def set_fast_path(unet: torch.nn.Module, mode: FastPath, *, capturer: Capturer | None = None) -> DenoiserRunner:
    """Choose ``unet``'s fast path for every method that uses it (a model-level choice)."""
    runner = denoiser_runner(unet)
    runner.set_mode(mode, capturer)
    return runner


def accelerate(module: torch.nn.Module, *, fast_path: FastPath | None = None, channels_last: bool = False) -> torch.nn.Module:
    """Apply the speed-ups in place and return ``module``.

    ``fast_path`` (UNets only; None leaves it as it is): the modes above.
    ``channels_last``: NHWC weights and activations for the convolutions (faster cuDNN kernels on
    tensor-core GPUs; on CPUs it mostly changes nothing). It moves the weights, which drops the
    UNet's graphs: they are captured again at the next call.
    """
    if channels_last:
        module.to(memory_format=torch.channels_last)
    if fast_path is not None:
        set_fast_path(module, fast_path)
    return module


def reset(module: torch.nn.Module) -> torch.nn.Module:
    """Undo ``channels_last``: the contiguous memory format again (the fast path is set, not undone)."""
    return module.to(memory_format=torch.contiguous_format)
