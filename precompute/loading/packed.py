"""Dense fp32 linear layers on the CPU through oneDNN, with each weight packed once.

On this project's machines (AMD EPYC, AVX-512) torch's fp32 `F.linear` / `x @ W` run MKL's sgemm at about 220 GFLOP/s
on 2 cores; oneDNN's linear with a pre-packed weight (the kernel PyTorch's own CPU compiler uses for frozen weights)
runs SmolLM2's shapes at 450-500 GFLOP/s (`python bench/packed_linear.py --threads 2`). Results differ from MKL's by float32
rounding only (relative 1e-6), and oneDNN's rows do not depend on which other rows share the call.

`packed_linears(*modules)` is a context manager: inside it, every `F.linear(x, W, b)`, `x @ W` and `torch.matmul(x,
W)` whose W is (a view of) a float32 CPU parameter of those modules runs through oneDNN. TransformerLens and
sae-lens call exactly these for every weight, so their code runs unchanged. Gradients flow to the input (the
paper's ablation metric differentiates activations, never weights): inside the block the weights are constants, so
no gradient reaches them (never train inside it). Another dtype or device, or a torch without oneDNN, falls back to
torch's own call.
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable
from torch.overrides import TorchFunctionMode

# Set EXPLORER_PACKED_LINEARS=0 to run torch's own kernels (for comparisons; results differ by rounding only).
ENV_SWITCH = "EXPLORER_PACKED_LINEARS"
# `x @ W` reaches a mode as TensorBase.matmul; torch.matmul as itself
MATMULS = (torch.matmul, torch._C.TensorBase.matmul, torch._C.TensorBase.__matmul__)


def packing_available() -> bool:
    return (os.environ.get(ENV_SWITCH, "1") != "0" and torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_linear_pointwise") and hasattr(torch.ops.mkldnn, "_reorder_linear_weight"))


@functools.cache
def keep_freed_buffers() -> None:
    """Lets glibc reuse freed buffers of up to 32 MiB instead of mapping fresh pages for each. With oneDNN in the
    loop glibc's adaptive threshold can stop adapting, and each [batch, positions, heads, d_head] copy of an attention
    layer (a few MB) then page-faults its way through new memory (`python bench/packed_linear.py`: a batch of word
    activations 0.094 -> 0.072 s; once seen at 45 % of a cached-prefix forward). Once per process, for
    the precompute's batch passes (not the live server, where each thread's arena would keep its freed memory);
    nothing where the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
    libc.mallopt(m_mmap_threshold, 32 << 20)  # glibc's largest allowed value
    libc.mallopt(m_trim_threshold, 256 << 20)  # keep up to 256 MiB of freed memory for reuse


def pack(weight: torch.Tensor) -> torch.Tensor:
    """weight [out, in] -> oneDNN's blocked layout for that weight (a copy; opaque)."""
    return torch.ops.mkldnn._reorder_linear_weight(weight.contiguous())


def onednn_linear(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x [..., in] @ W.T + bias, W packed by `pack`."""
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")


# Each parameter's packed views, made on first use and dropped when the parameter is (a finalizer per parameter; keyed
# by id because tensors compare elementwise): a model packed once serves every module set it is used with.
# {id(parameter): {(shape, stride): (version, packed)}}
PACKED: dict[int, dict[tuple, tuple[int, torch.Tensor]]] = {}
PACKING = threading.Lock()


def views_of(parameter: torch.Tensor) -> dict[tuple, tuple[int, torch.Tensor]]:
    """The parameter's packed views (under PACKING)."""
    views = PACKED.get(id(parameter))
    if views is None:
        views = PACKED[id(parameter)] = {}
        weakref.finalize(parameter, PACKED.pop, id(parameter), None)
    return views


class PackedWeights:
    """The modules' float32 CPU parameters by address (read at each entry: a freed tensor's address can be reused) and
    their packed forms (PACKED). A weight written in place has a new version and is packed again; one edited through
    `.data` keeps its version, so call `forget(module)` after such an edit."""

    def __init__(self, modules: tuple[torch.nn.Module, ...]):
        self.owners: dict[int, torch.Tensor] = {p.data_ptr(): p for m in modules for p in m.parameters()
                                                if p.dtype == torch.float32 and p.device.type == "cpu" and p.dim() >= 2}

    def owns(self, weight: torch.Tensor) -> bool:
        return weight.data_ptr() in self.owners and weight.dtype == torch.float32 and weight.device.type == "cpu"

    def get(self, weight: torch.Tensor) -> torch.Tensor:
        """weight [out, in] (any view starting at an owned parameter's first element) packed."""
        owner = self.owners[weight.data_ptr()]
        key = (tuple(weight.shape), weight.stride())
        with PACKING:
            views = views_of(owner)
            found = views.get(key)
            if found is not None and found[0] == weight._version:
                return found[1]
            packed = pack(weight.detach())
            views[key] = (weight._version, packed)
        return packed

    def linear(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """x @ weight.T + bias through the packed weight (weight and bias as constants)."""
        return onednn_linear(x, self.get(weight), None if bias is None else bias.detach())


def packed_count(*modules: torch.nn.Module) -> int:
    """How many packed views the modules' parameters hold."""
    return sum(len(PACKED.get(id(p), {})) for m in modules for p in m.parameters())


def forget(*modules: torch.nn.Module) -> None:
    """Drops the modules' packed weights (after their values were changed through `.data`)."""
    with PACKING:
        for m in modules:
            for p in m.parameters():
                PACKED.get(id(p), {}).clear()


class PackedLinearFunction(torch.autograd.Function):
    """oneDNN linear whose backward gives the input's gradient (grad @ W, through the packed transpose)."""

    @staticmethod
    def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, store: PackedWeights) -> torch.Tensor:
        return store.linear(x, weight, bias)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        _, weight, _, store = inputs
        ctx.weight, ctx.store = weight, store

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        transposed = ctx.weight.t()  # [in, out]: a view of the owned parameter, packed on its own key
        return ctx.store.linear(grad.contiguous(), transposed, None), None, None, None


class PackedLinearMode(TorchFunctionMode):
    def __init__(self, store: PackedWeights):
        super().__init__()
        self.store = store

    def eligible(self, x, weight, bias=None) -> bool:
        return (isinstance(x, torch.Tensor) and isinstance(weight, torch.Tensor) and weight.dim() == 2 and x.dim() >= 2
                and x.dtype == torch.float32 and x.device.type == "cpu" and x.layout == torch.strided
                and (bias is None or (isinstance(bias, torch.Tensor) and bias.dtype == torch.float32
                                      and bias.device.type == "cpu"))
                and self.store.owns(weight))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear and not kwargs and len(args) in (2, 3):
            x, weight, bias = (*args, None)[:3]
            if self.eligible(x, weight, bias):
                return self.linear(x, weight, bias)
        elif func in MATMULS and not kwargs and len(args) == 2:
            x, weight = args
            if self.eligible(x, weight):
                return self.linear(x, weight.t(), None)
        return func(*args, **kwargs)

    def linear(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return PackedLinearFunction.apply(x, weight, bias, self.store)
        return self.store.linear(x, weight, bias)


@contextmanager
def packed_linears(*modules: torch.nn.Module | None) -> Iterator[None]:
    """Runs the block with the modules' float32 CPU weights' linears through oneDNN (see the module docstring)."""
    present = tuple(m for m in modules if isinstance(m, torch.nn.Module))
    if not present or not packing_available():
        yield
        return
    with PackedLinearMode(PackedWeights(present)):
        yield
