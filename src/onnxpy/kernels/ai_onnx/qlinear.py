"""Quantized products: QLinearMatMul, QLinearConv, MatMulInteger, ConvInteger.

Each is a factory. A constant weight is centred on its zero point and laid out once as an
``intgemm.ExactWeights`` (float32 for BLAS, with the reduction split where float32 could round);
each run converts the activation to centred floats in one pass (inside the im2col copy for a
convolution), makes one exact product, and writes the requantized result in the product's output
pass (``intgemm.requantize``). The parameters the fast path needs to be constant or scalar
(per-row activation parameters, a weight that is a graph input) take the general path, which
computes the same exact sums in float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from operator import is_

import numpy as np

from onnxpy.kernels.ai_onnx.conv import resolve_pads, spatial_attr, window_view
from onnxpy.kernels.intgemm import (
    BAKE_MIN,
    ExactWeights,
    Requantizer,
    centre_of,
    centred,
    integer_range,
    requantize,
)
from onnxpy.kernels.registry import NodeInfo, register
from onnxpy.kernels.scratch import scratch

__all__ = [
    "ConvGeometry",
    "IntegerConv",
    "integer_product_rows",
    "ConstantCache",
    "input_dtype",
    "baked_zero",
]

_F32 = np.dtype(np.float32)


def _f64(a: object) -> np.ndarray:
    return np.asarray(a).astype(np.float64)


def _scalar(v: object) -> float:
    a = v if type(v) is np.ndarray else np.asarray(v)
    if a.size != 1:
        raise ValueError(f"expected a scalar, got shape {a.shape}")
    return float(a.item())


def _is_scalar(v: object) -> bool:
    return v is None or np.asarray(v).size == 1


class ConstantCache:
    """Output stages derived once from inputs that are the node's constants: when the
    arguments at ``positions`` are the very arrays the model holds (the planner passes them as
    they are), the stage made for them is reused; otherwise one is made for the call. A stage
    also depends on the product's zero-point term, one of the few arrays a product keeps (plain,
    or less a baked offset), so the term's identity is part of the key."""

    def __init__(self, info: NodeInfo, positions: Sequence[int]) -> None:
        self.constants = [info.constant_inputs.get(p) for p in positions]
        self.usable = all(c is not None for c in self.constants)
        self._stages: dict[int, tuple] = {}

    def holds(self, args: Sequence[object]) -> bool:
        """Whether ``args`` are the node's constants themselves (extra trailing args, absent
        inputs, are ignored)."""
        return self.usable and all(map(is_, args, self.constants))

    def known(self, term, key):
        """The stage made for ``term`` and ``key`` (the caller checked ``holds``), or None."""
        found = self._stages.get(id(term))
        if found is not None and found[0] is term and found[1] == key:
            return found[2]
        return None

    def get(self, args: Sequence[object], key, make: Callable[[], object], term=None):
        if not self.holds(args):
            return make()
        found = self.known(term, key)
        if found is not None:
            return found
        if len(self._stages) > 16:  # terms that change per call
            self._stages.clear()
        stage = make()
        self._stages[id(term)] = (term, key, stage)  # holding the term keeps its id unique
        return stage


# -- MatMul family -------------------------------------------------------------------------------


class _RowProduct:
    """``(a - za) @ (b - zb)`` for a constant 2-D b: exact, as float32/float64 [..., M, N].

    ``bake`` = (za, bias or None), the model's constant activation zero point and int32 bias:
    their per-column sum is laid into the product (``ExactWeights`` offset), so the output
    stage adds nothing; a call with another zero point gets the difference as its term."""

    def __init__(self, b: np.ndarray, b_zero_point: object, bake: tuple | None = None) -> None:
        # The integers are kept as they are; the float layout is made per activation type.
        self.b = np.asarray(b)
        self.zb = 0.0 if b_zero_point is None else _f64(b_zero_point).reshape(-1)
        self.bake = bake
        self.weights: dict[np.dtype, ExactWeights] = {}
        self._per_zero_point: dict[tuple, tuple] = {}

    def _layout(self, dtype: np.dtype) -> ExactWeights:
        ew = self.weights.get(dtype)
        if ew is None:
            wt = (_f64(self.b) - self.zb).T
            offset = None
            if self.bake is not None:
                za, bias = self.bake
                offset = (centre_of(dtype) - za) * wt.sum(axis=-1)
                if bias is not None:
                    offset = offset + _f64(bias).reshape(-1)
            ew = self.weights[dtype] = ExactWeights(wt, dtype, offset=offset)
        return ew

    def __call__(self, a: np.ndarray, za: float) -> tuple[np.ndarray, np.ndarray]:
        """(exact product of the centred a, plus the baked offset where the product is large
        enough to read it; the [N] term the zero point adds beyond what the product holds,
        float64: shared between calls, not to be written)."""
        found = self._per_zero_point.get((a.dtype, za))
        if found is None:
            ew = self._layout(a.dtype)
            c = centre_of(a.dtype)
            if len(self._per_zero_point) > 16:  # a zero point that changes per call
                self._per_zero_point.clear()
            term = (c - za) * ew.row_sums
            less = term if ew.baked is None else term - ew.baked
            found = self._per_zero_point[(a.dtype, za)] = (ew, c, term, less)
        ew, c, term, less = found
        rows, baked = ew.operand_rows(a, c)
        return ew.right(rows), less if baked else term

    def with_zero_point_removed(self, q: np.ndarray) -> np.ndarray:
        """``q @ (b - zb)^T`` for ``q`` already holding ``a - za`` as floats (|q| <= 255, the
        range of an 8-bit value minus its zero point): exact."""
        ew = self.weights.get("centred")
        if ew is None:
            ew = self.weights["centred"] = ExactWeights((_f64(self.b) - self.zb).T, None, 255)
        return ew.right(q)

    def prepare(self, dtype: np.dtype | None) -> None:
        """Lay the weight out now for activations of ``dtype`` (when known)."""
        if dtype is not None and dtype.kind in "iu":
            self._layout(dtype)


def input_dtype(info: NodeInfo, position: int) -> np.dtype | None:
    """The element type of input ``position`` when the model says it (constant or typed)."""
    c = info.constant_inputs.get(position)
    if c is not None:
        return c.dtype
    tp = info.input_types[position] if position < len(info.input_types) else None
    if tp is None or tp.WhichOneof("value") != "tensor_type":
        return None
    from onnxpy.types import ELEM_TYPE_TO_DTYPE

    return ELEM_TYPE_TO_DTYPE.get(tp.tensor_type.elem_type)


def integer_product_rows(
    b: np.ndarray,
    b_zero_point: object = None,
    activation: np.dtype | None = None,
    bake: tuple | None = None,
):
    """``f(a, a_zero_point) -> exact (a - za) @ (b - zb)`` for a constant 2-D integer ``b``
    (float32 or float64 result): shared by the com.microsoft integer MatMuls. With the
    activation type known, the weight is laid out now (at session creation). ``bake``: see
    ``_RowProduct``."""
    product = _RowProduct(b, b_zero_point, bake)
    product.prepare(activation)
    return product


def baked_zero(info: NodeInfo, position: int, bias_position: int | None = None):
    """(zero point, bias or None) to bake into a product when the activation's zero point at
    ``position`` is a constant scalar (and the int32 bias, when constant); else None."""
    za = info.constant_inputs.get(position)
    if za is None or np.asarray(za).size != 1:
        return None
    bias = None if bias_position is None else info.constant_inputs.get(bias_position)
    return _scalar(za), bias


def _const_2d(info: NodeInfo, position: int, zp_position: int | None) -> bool:
    b = info.constant_inputs.get(position)
    if b is None or b.ndim != 2:
        return False
    return (
        zp_position is None
        or zp_position >= info.num_inputs
        or zp_position in (info.constant_inputs)
    )


def _shifted_general(x: np.ndarray, zero_point: object, per_row: bool) -> np.ndarray:
    """x - zero_point in float64; a 1-D zero point is per row (A) or per column (B)."""
    y = _f64(x)
    if zero_point is None:
        return y
    zp = _f64(zero_point)
    if per_row and zp.ndim == 1 and x.ndim >= 2 and zp.size == x.shape[-2] and zp.size != 1:
        zp = zp.reshape(-1, 1)
    return y - zp


@register("MatMulInteger", since=10, factory=True, fresh=True)
def matmul_integer(info: NodeInfo):
    """Exact (a - a_zero_point) @ (b - b_zero_point) as int32."""
    product = (
        integer_product_rows(
            info.constant_inputs[1], info.constant_inputs.get(3), input_dtype(info, 0)
        )
        if (_const_2d(info, 1, 3))
        else None
    )

    def run(a, b, a_zero_point=None, b_zero_point=None, /):
        a = np.asarray(a)
        if product is not None and _is_scalar(a_zero_point) and a.dtype.kind in "iu":
            za = 0.0 if a_zero_point is None else _scalar(a_zero_point)
            acc, term = product(a, za)
            return _int32_sum(acc, term)
        acc = np.matmul(
            _shifted_general(a, a_zero_point, True), _shifted_general(b, b_zero_point, False)
        )
        return acc.astype(np.int64).astype(np.int32)

    return run


def _int32_sum(acc: np.ndarray, term: np.ndarray) -> np.ndarray:
    """acc + term as int32, exactly (both hold integers; their sum may pass 2**24)."""
    out = acc.astype(np.int32)
    if term.any():
        out += term.astype(np.int32)
    return out


def _rows(p: np.ndarray) -> np.ndarray:
    """A per-row parameter of ``a`` ([M]) as a column [M, 1]; others unchanged."""
    return p.reshape(-1, 1) if p.ndim == 1 and p.size > 1 else p


@register("QLinearMatMul", since=(10, 21), factory=True, fresh=True)
def qlinear_matmul(info: NodeInfo):
    """Quantized numpy.matmul: exact integer product, then one rescale to y's quantization."""
    consts = info.constant_inputs
    product = (
        integer_product_rows(consts[3], consts.get(5), input_dtype(info, 0), baked_zero(info, 2))
        if (_const_2d(info, 3, 5))
        else None
    )

    cache = ConstantCache(info, (1, 2, 4, 6, 7))

    def run(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point, /):
        a = np.asarray(a)
        dtype = np.asarray(y_zero_point).dtype
        if product is not None and _is_scalar(a_scale) and _is_scalar(a_zero_point):
            za = _scalar(a_zero_point)
            acc, term = product(a, za)

            def make() -> Requantizer:
                mult = _scalar(a_scale) * _f64(b_scale).reshape(-1) / _scalar(y_scale)
                return Requantizer(term, mult, _scalar(y_zero_point), dtype)

            args = (a_scale, a_zero_point, b_scale, y_scale, y_zero_point)
            return cache.get(args, a.dtype, make, term)(acc)
        acc = np.matmul(
            _shifted_general(a, a_zero_point, True), _shifted_general(b, b_zero_point, False)
        )
        mult = _rows(_f64(a_scale)) * _f64(b_scale) / _f64(y_scale)
        return requantize(acc, None, mult, _scalar(y_zero_point), dtype)

    return run


# -- Conv family ---------------------------------------------------------------------------------


class ConvGeometry:
    """A forward convolution's attributes, resolved per input shape."""

    def __init__(self, auto_pad, dilations, group, kernel_shape, pads, strides) -> None:
        self.auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
        self.dilations, self.group, self.kernel_shape = dilations, int(group), kernel_shape
        self.pads, self.strides = pads, strides

    def resolve(self, x_shape: Sequence[int], w_shape: Sequence[int]):
        n = len(x_shape) - 2
        kernel = tuple(int(k) for k in w_shape[2:])
        if len(w_shape) != n + 2:
            raise ValueError(f"weight rank {len(w_shape)} does not match input rank {len(x_shape)}")
        if self.kernel_shape and tuple(int(k) for k in self.kernel_shape) != kernel:
            raise ValueError(f"kernel_shape {list(self.kernel_shape)} != weight shape {kernel}")
        strides = spatial_attr(self.strides, n, 1)
        dilations = spatial_attr(self.dilations, n, 1)
        begin, end = resolve_pads(x_shape[2:], kernel, strides, dilations, self.pads, self.auto_pad)
        out = tuple(
            (i + b + e - (k - 1) * d - 1) // s + 1
            for i, k, s, d, b, e in zip(x_shape[2:], kernel, strides, dilations, begin, end)
        )
        if any(o <= 0 for o in out):
            raise ValueError(f"the kernel does not fit the padded input (output shape {out})")
        return kernel, strides, dilations, begin, end, out


class IntegerConv:
    """``conv(x - x_zp, w - w_zp)`` exactly, for a constant integer weight ``w`` [M, C/g, *k].

    Each run centres x into a padded float buffer (the padding holds ``x_zp - centre``, i.e.
    a real zero), copies its windows into an im2col matrix and makes one exact product per
    group; the result is float [N, M, *out] plus, separately, the per-channel zero-point term.
    """

    def __init__(
        self, w: np.ndarray, w_zero_point: object, geometry: ConvGeometry, bake=None
    ) -> None:
        """``bake`` = (x_zp, bias or None): constants laid into the product (see
        ``_RowProduct``); the im2col matrix then carries a row of ones."""
        w = np.asarray(w)
        self.bake = bake
        m, cg = w.shape[:2]
        g = geometry.group
        if m % g:
            raise ValueError(f"output channels {m} not divisible by group {g}")
        wz = 0.0 if w_zero_point is None else _f64(w_zero_point).reshape(-1)
        self.w, self.wz = w, (wz.reshape((-1,) + (1,) * (w.ndim - 1)) if np.ndim(wz) else wz)
        self.shape = w.shape
        self.geometry = geometry
        self.kc = cg * math.prod(w.shape[2:])
        self.weights: dict[np.dtype, ExactWeights] = {}
        self._resolved: dict[tuple, tuple] = {}  # per input shape: the resolved geometry
        self._terms: dict[tuple, tuple] = {}  # per (type, x_zp): zero-point terms, plain/baked

    def _exact(self, dtype: np.dtype) -> ExactWeights:
        """The float layout for activations of ``dtype`` (made on first use; the integers
        stay the only other copy)."""
        ew = self.weights.get(dtype)
        if ew is None:
            m, g = self.shape[0], self.geometry.group
            wc = (_f64(self.w) - self.wz).reshape(g, m // g, self.kc)
            offset = None
            if self.bake is not None:
                zx, bias = self.bake
                offset = (centre_of(dtype) - zx) * wc.sum(axis=-1)
                if bias is not None:
                    offset = offset + _f64(bias).reshape(g, m // g)
            ew = self.weights[dtype] = ExactWeights(wc, dtype, offset=offset)
        return ew

    def __call__(self, x: np.ndarray, x_zero_point: float) -> tuple[np.ndarray, np.ndarray]:
        """(exact product [N, M, *out] of centred x, the [M] term the zero point adds)."""
        geometry = self._resolved.get(x.shape)
        if geometry is None:
            if len(self._resolved) > 8:
                self._resolved.clear()
            geometry = self._resolved[x.shape] = self.geometry.resolve(x.shape, self.shape)
        kernel, strides, dilations, begin, end, out = geometry
        ew = self._exact(x.dtype)
        g = self.geometry.group
        n_batch, c = x.shape[:2]
        if c != self.shape[1] * g:
            raise ValueError(f"input channels {c} != weight channels {self.shape[1]} x group {g}")
        centre = centre_of(x.dtype)
        p = math.prod(out)
        kc = self.kc
        pointwise = all(k == 1 for k in kernel) and not any(begin) and not any(end)
        extra = ew.extra if n_batch * self.shape[0] * p >= BAKE_MIN else 0
        if pointwise and all(s == 1 for s in strides):
            (cols,) = scratch((n_batch, g, kc + extra, p), dtype=ew.dtype)
            centred(x.reshape(n_batch, g, kc, p), centre, ew.dtype, out=cols[:, :, :kc])
        else:
            padded = tuple(i + b + e for i, b, e in zip(x.shape[2:], begin, end))
            xp, cols = scratch((n_batch, c, *padded), (n_batch, g, kc + extra, p), dtype=ew.dtype)
            if any(begin) or any(end):
                xp.fill(x_zero_point - centre)
                inner = tuple(slice(b, b + i) for b, i in zip(begin, x.shape[2:]))
                centred(x, centre, ew.dtype, out=xp[(Ellipsis, *inner)])
            else:
                centred(x, centre, ew.dtype, out=xp)
            view = window_view(xp, kernel, strides, dilations, out)
            if extra:
                split = (n_batch, g, c // g, *view.shape[2:])  # only splits axes: views both
                target = cols[:, :, :kc].reshape(split)
                if not np.may_share_memory(target, cols):  # (np.reshape's copy=False: 2.1+)
                    raise AssertionError("the im2col target must be a view of its buffer")
                np.copyto(target, view.reshape(split))
            else:
                np.copyto(cols.reshape(view.shape), view)
        if extra:
            cols[:, :, kc] = 1  # the row the baked offset reads
        acc = ew.left(cols)  # [N, g, M/g, P]
        terms = self._terms.get((x.dtype, x_zero_point))
        if terms is None:
            if len(self._terms) > 16:  # a zero point that changes per call
                self._terms.clear()
            term = ((centre - x_zero_point) * ew.row_sums).reshape(-1)
            less = term if ew.baked is None else term - ew.baked.reshape(-1)
            terms = self._terms[(x.dtype, x_zero_point)] = (term, less)
        return acc.reshape(n_batch, self.shape[0], *out), terms[1] if extra else terms[0]


def _conv_attrs(auto_pad, dilations, group, kernel_shape, pads, strides) -> ConvGeometry:
    return ConvGeometry(auto_pad, dilations, group, kernel_shape, pads, strides)


def _channels(v: np.ndarray, rank: int) -> np.ndarray:
    """A per-channel vector shaped to broadcast over [N, M, *spatial]."""
    return np.asarray(v).reshape((-1,) + (1,) * (rank - 2))


@register("ConvInteger", since=10, factory=True, fresh=True)
def conv_integer(
    info: NodeInfo,
    *,
    auto_pad="NOTSET",
    dilations=None,
    group=1,
    kernel_shape=None,
    pads=None,
    strides=None,
) -> Callable[..., np.ndarray]:
    """Integer convolution of zero-point-shifted operands, exact, as int32."""
    geom = _conv_attrs(auto_pad, dilations, group, kernel_shape, pads, strides)
    consts = info.constant_inputs
    fixed = None
    if 1 in consts and (info.num_inputs < 4 or 3 in consts):
        fixed = IntegerConv(consts[1], consts.get(3), geom)
        x_type = input_dtype(info, 0)
        if x_type is not None and x_type.kind in "iu":
            fixed._exact(x_type)

    def run(x, w, x_zero_point=None, w_zero_point=None, /) -> np.ndarray:
        x = np.asarray(x)
        conv = fixed if fixed is not None else IntegerConv(w, w_zero_point, geom)
        zx = 0.0 if x_zero_point is None else _scalar(x_zero_point)
        acc, term = conv(x, zx)
        return _int32_sum(acc, _channels(term, acc.ndim))

    return run


@register("QLinearConv", since=10, factory=True, fresh=True)
def qlinear_conv(
    info: NodeInfo,
    *,
    auto_pad="NOTSET",
    dilations=None,
    group=1,
    kernel_shape=None,
    pads=None,
    strides=None,
) -> Callable[..., np.ndarray]:
    """Convolution of (x - x_zp) with (w - w_zp) plus the int32 bias, rescaled to y."""
    geom = _conv_attrs(auto_pad, dilations, group, kernel_shape, pads, strides)
    consts = info.constant_inputs
    fixed = None
    if 3 in consts and 5 in consts:
        fixed = IntegerConv(consts[3], consts[5], geom, baked_zero(info, 2, 8))
    x_type = input_dtype(info, 0)
    if fixed is not None and x_type is not None and x_type.kind in "iu":
        fixed._exact(x_type)  # the weight's float layout, made at session creation

    cache = ConstantCache(info, (1, 2, 4, 6, 7, 8) if info.num_inputs > 8 else (1, 2, 4, 6, 7))

    zx_model = _scalar(consts[2]) if 2 in consts else None

    def run(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, b=None, /):
        x = np.asarray(x)
        args = (x_scale, x_zero_point, w_scale, y_scale, y_zero_point, b)
        if fixed is not None and cache.holds(args):  # the model's constants: a made stage
            acc, term = fixed(x, zx_model)
            stage = cache.known(term, (x.dtype, acc.ndim))
            if stage is not None:
                return stage(acc)
        conv = fixed if fixed is not None else IntegerConv(w, w_zero_point, geom)
        model_zp = zx_model is not None and x_zero_point is consts[2]
        zx = zx_model if model_zp else _scalar(x_zero_point)
        acc, term = conv(x, zx)

        def make() -> Requantizer:
            offset = term if b is None else term + _f64(b).reshape(-1)
            mult = _scalar(x_scale) * _f64(w_scale).reshape(-1) / _scalar(y_scale)
            dtype = np.asarray(y_zero_point).dtype
            integer_range(dtype)  # refuses a non-integer output type clearly
            rank = acc.ndim
            return Requantizer(
                _channels(offset, rank), _channels(mult, rank), _scalar(y_zero_point), dtype
            )

        return cache.get(args, (x.dtype, acc.ndim), make, term)(acc)

    return run
