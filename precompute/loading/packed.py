"""Dense fp32 linear layers on the CPU through oneDNN, with each weight packed once.

On this project's machines (AMD EPYC, AVX-512) torch's fp32 `F.linear` / `x @ W` run MKL's sgemm at about 210 GFLOP/s
on 2 cores; oneDNN's linear with a pre-packed weight (the kernel PyTorch's own CPU compiler uses for frozen weights)
runs the same shapes at 450-510 GFLOP/s (`python bench/packed_linear.py`). Results differ from MKL's by float32
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
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
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
    loop glibc's adaptive threshold stops adapting, and every [batch, positions, heads, d_head] copy of an attention
    layer (a few MB) page-faulted its way through new memory: 45 % of a cached-prefix forward. Once per process;
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


class PackedWeights:
    """The packed forms of one set of modules' weights, made on first use and kept while their values are unchanged
    (a weight written in place has a new version and is packed again; a parameter given new storage is a new key)."""

    def __init__(self, modules: tuple[torch.nn.Module, ...]):
        self.modules = modules
        self.owners: dict[int, torch.Tensor] = {}
        self.packed: dict[tuple, tuple[torch.Tensor, int, torch.Tensor]] = {}
        self.lock = threading.Lock()

    def refresh_owners(self) -> None:
        """The parameters' current addresses (read at each entry: a freed tensor's address can be reused)."""
        self.owners = {p.data_ptr(): p for m in self.modules for p in m.parameters()
                       if p.dtype == torch.float32 and p.device.type == "cpu" and p.dim() >= 2}

    def owns(self, weight: torch.Tensor) -> bool:
        return weight.data_ptr() in self.owners and weight.dtype == torch.float32 and weight.device.type == "cpu"

    def get(self, weight: torch.Tensor) -> torch.Tensor:
        """weight [out, in] (any view starting at an owned parameter's first element) packed."""
        key = (weight.data_ptr(), tuple(weight.shape), weight.stride())
        owner = self.owners[key[0]]
        found = self.packed.get(key)
        if found is not None and found[0] is owner and found[1] == weight._version:
            return found[2]
        with self.lock:
            packed = pack(weight.detach())
            self.packed[key] = (owner, weight._version, packed)
        return packed


class PackedLinearFunction(torch.autograd.Function):
    """oneDNN linear whose backward gives the input's gradient (grad @ W, through the packed transpose)."""

    @staticmethod
    def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, store: PackedWeights) -> torch.Tensor:
        return onednn_linear(x, store.get(weight), None if bias is None else bias.detach())

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        _, weight, _, store = inputs
        ctx.weight, ctx.store = weight, store

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        transposed = ctx.weight.t()  # [in, out]: a view of the owned parameter, packed on its own key
        return onednn_linear(grad.contiguous(), ctx.store.get(transposed), None), None, None, None


class PackedLinearMode(TorchFunctionMode):
    def __init__(self, store: PackedWeights):
        super().__init__()
        self.store = store

    def eligible(self, x, weight, bias=None) -> bool:
        return (isinstance(x, torch.Tensor) and isinstance(weight, torch.Tensor) and weight.dim() == 2 and x.dim() >= 2
                and x.dtype == torch.float32 and x.device.type == "cpu"
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
        return onednn_linear(x, self.store.get(weight), None if bias is None else bias.detach())


def store_for(modules: tuple[torch.nn.Module, ...]) -> PackedWeights:
    """One store per module set, kept on the first module (a model loaded once keeps its packed weights)."""
    owner = modules[0]
    stores: dict[tuple[int, ...], PackedWeights] = owner.__dict__.setdefault("_packed_weight_stores", {})
    key = tuple(id(m) for m in modules)
    if key not in stores:
        stores[key] = PackedWeights(modules)
    return stores[key]


@contextmanager
def packed_linears(*modules: torch.nn.Module | None) -> Iterator[None]:
    """Runs the block with the modules' float32 CPU weights' linears through oneDNN (see the module docstring)."""
    present = tuple(m for m in modules if isinstance(m, torch.nn.Module))
    if not present or not packing_available():
        yield
        return
    keep_freed_buffers()
    store = store_for(present)
    store.refresh_owners()
    with PackedLinearMode(store):
        yield
