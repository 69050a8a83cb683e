"""Shape and layout operators of the default domain.

Reshaping kernels (Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Split, Slice) may return
views of their input: no kernel writes into an input, so sharing memory is safe. Everything
here works on any element type, strings (``object`` arrays) and ml_dtypes types included.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from onnxpy.kernels.registry import NodeInfo, register

__all__ = ["as_ints", "normalize_axis", "zero_of"]


# -- helpers shared with indexing.py ---------------------------------------------------------
def as_ints(x: Any) -> list[int]:
    """A 1-D (or scalar) integer tensor or attribute list as Python ints."""
    if x is None:
        return []
    arr = np.asarray(x)
    if arr.dtype.kind not in "iub":
        arr = arr.astype(np.int64)
    return [int(v) for v in arr.reshape(-1).tolist()]


def as_int(x: Any, what: str) -> int:
    """A tensor holding exactly one integer (scalar or 1-element) as a Python int."""
    values = as_ints(x)
    if len(values) != 1:
        raise ValueError(f"{what} must hold exactly one value, got {len(values)}")
    return values[0]


def normalize_axis(axis: int, rank: int, op: str) -> int:
    """``axis`` in [-rank, rank-1] mapped to [0, rank-1]; ValueError outside."""
    if not -rank <= axis < rank:
        raise ValueError(f"{op}: axis {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def zero_of(dtype: np.dtype) -> Any:
    """The fill value standing for zero: '' for strings, False for bool, 0 otherwise."""
    if dtype.kind == "O":
        return ""
    return np.zeros((), dtype=dtype)[()]


# -- shape queries ---------------------------------------------------------------------------
@register("Shape", since=(1, 13, 15, 19, 21, 23, 24, 25))
def shape(data, /, *, start=0, end=None) -> np.ndarray:
    """Python slicing clamps exactly as the spec asks (out-of-range axes go to [0, r])."""
    dims = np.shape(data)
    return np.array(dims[start:end], dtype=np.int64)


@register("Size", since=(1, 13, 19, 21, 23, 24, 25))
def size(data, /) -> np.ndarray:
    return np.array(np.size(data), dtype=np.int64)


# -- reshaping -------------------------------------------------------------------------------
def _reshape_dims(in_shape: Sequence[int], target: list[int], allowzero: int) -> tuple[int, ...]:
    """Resolve 0 (copy) and -1 (infer) entries of a Reshape target shape."""
    if allowzero and 0 in target and -1 in target:
        raise ValueError("Reshape: with allowzero=1 the shape cannot hold both 0 and -1")
    out: list[int] = []
    infer = None
    for i, d in enumerate(target):
        if d == -1:
            if infer is not None:
                raise ValueError(f"Reshape: more than one -1 in shape {target}")
            infer = i
            out.append(1)
        elif d == 0 and not allowzero:
            if i >= len(in_shape):
                raise ValueError(
                    f"Reshape: 0 at position {i} but the input has rank {len(in_shape)}"
                )
            out.append(in_shape[i])
        elif d < 0:
            raise ValueError(f"Reshape: invalid dimension {d} in shape {target}")
        else:
            out.append(d)
    total = math.prod(in_shape)
    known = math.prod(out)
    if infer is not None:
        if known == 0 or total % known:
            raise ValueError(f"Reshape: cannot reshape {tuple(in_shape)} into {target}")
        out[infer] = total // known
    elif known != total:
        raise ValueError(f"Reshape: cannot reshape {tuple(in_shape)} into {target}")
    return tuple(out)


@register("Reshape", since=1)
def reshape_1(data, /, *, shape=None, consumed_inputs=None) -> np.ndarray:
    if shape is None:
        raise ValueError("Reshape-1 needs the 'shape' attribute")
    return np.reshape(data, _reshape_dims(data.shape, as_ints(shape), 0))


@register("Reshape", since=(5, 13, 14, 19, 21, 23, 24, 25))
def reshape(data, shape, /, *, allowzero=0) -> np.ndarray:
    return np.reshape(data, _reshape_dims(data.shape, as_ints(shape), allowzero))


@register("Flatten", since=(1, 9, 11, 13, 21, 23, 24, 25))
def flatten(x, /, *, axis=1) -> np.ndarray:
    r = x.ndim
    if not -r <= axis <= r:
        raise ValueError(f"Flatten: axis {axis} is out of range for rank {r}")
    if axis < 0:
        axis += r
    return np.reshape(x, (math.prod(x.shape[:axis]), math.prod(x.shape[axis:])))


def _squeeze(data: np.ndarray, axes: list[int] | None) -> np.ndarray:
    if axes is None:
        return np.reshape(data, tuple(d for d in data.shape if d != 1))
    norm = {normalize_axis(a, data.ndim, "Squeeze") for a in axes}
    for a in norm:
        if data.shape[a] != 1:
            raise ValueError(f"Squeeze: axis {a} has size {data.shape[a]}, not 1")
    return np.reshape(data, tuple(d for i, d in enumerate(data.shape) if i not in norm))


@register("Squeeze", since=(1, 11))
def squeeze_1(data, /, *, axes=None) -> np.ndarray:
    return _squeeze(data, None if axes is None else as_ints(axes))


@register("Squeeze", since=(13, 21, 23, 24, 25))
def squeeze(data, axes=None, /) -> np.ndarray:
    return _squeeze(data, None if axes is None else as_ints(axes))


def _unsqueeze(data: np.ndarray, axes: list[int]) -> np.ndarray:
    out_rank = data.ndim + len(axes)
    norm = {normalize_axis(a, out_rank, "Unsqueeze") for a in axes}
    if len(norm) != len(axes):
        raise ValueError(f"Unsqueeze: duplicate axes in {axes}")
    dims = iter(data.shape)
    return np.reshape(data, tuple(1 if i in norm else next(dims) for i in range(out_rank)))


@register("Unsqueeze", since=(1, 11))
def unsqueeze_1(data, /, *, axes=None) -> np.ndarray:
    if axes is None:
        raise ValueError("Unsqueeze-1 needs the 'axes' attribute")
    return _unsqueeze(data, as_ints(axes))


@register("Unsqueeze", since=(13, 21, 23, 24, 25))
def unsqueeze(data, axes, /) -> np.ndarray:
    return _unsqueeze(data, as_ints(axes))


@register("Transpose", since=(1, 13, 21, 23, 24, 25))
def transpose(data, /, *, perm=None) -> np.ndarray:
    if perm is None:
        return np.transpose(data)
    perm = as_ints(perm)
    if sorted(perm) != list(range(data.ndim)):
        raise ValueError(f"Transpose: perm {perm} is not a permutation of {data.ndim} axes")
    return np.transpose(data, perm)


# -- joining and splitting -------------------------------------------------------------------
@register("Concat", since=(1, 4, 11, 13), factory=True)
def concat(info: NodeInfo, /, *, axis=None) -> Callable[..., np.ndarray]:
    """``axis`` is required from opset 4; opset 1 defaulted it to 1."""
    if axis is None and info.opset >= 4:
        raise ValueError("Concat needs the 'axis' attribute")
    ax = 1 if axis is None else int(axis)

    def run(*inputs) -> np.ndarray:
        if not inputs:
            raise ValueError("Concat needs at least one input")
        rank = np.ndim(inputs[0])
        if any(np.ndim(x) != rank for x in inputs):
            raise ValueError(f"Concat: inputs of different ranks {[np.ndim(x) for x in inputs]}")
        return np.concatenate(inputs, axis=normalize_axis(ax, rank, "Concat"))

    return run


def _equal_parts(dim: int, parts: int) -> list[int]:
    """``parts`` chunks of ceil(dim / parts); the last ones are smaller (possibly empty)."""
    if parts <= 0:
        raise ValueError(f"Split: cannot split into {parts} parts")
    chunk = -(-dim // parts)
    return [max(0, min(chunk, dim - i * chunk)) for i in range(parts)]


@register("Split", since=(1, 2, 11, 13, 18), factory=True)
def split(info: NodeInfo, /, *, axis=0, split=None, num_outputs=None) -> Callable[..., tuple]:
    """Sizes from the split input or attribute, else ``num_outputs`` (or the node's output
    count) equal parts; the last part is smaller when the dimension does not divide."""
    attr_sizes = None if split is None else as_ints(split)
    parts = info.num_outputs if num_outputs is None else int(num_outputs)

    def run(data, split_sizes=None, /) -> tuple:
        ax = normalize_axis(axis, data.ndim, "Split")
        dim = data.shape[ax]
        if split_sizes is not None and np.size(split_sizes) > 0:
            sizes = as_ints(split_sizes)
        elif attr_sizes is not None:
            sizes = attr_sizes
        else:
            sizes = _equal_parts(dim, parts)
        if any(s < 0 for s in sizes) or sum(sizes) != dim:
            raise ValueError(f"Split: sizes {sizes} do not add up to dimension {dim}")
        return tuple(np.split(data, np.cumsum(sizes)[:-1].tolist(), axis=ax))

    return run


# -- slicing ---------------------------------------------------------------------------------
def _clamp(v: int, lo: int, hi: int) -> int:
    return max(lo, min(v, hi))


def _slice(data: np.ndarray, starts, ends, axes, steps) -> np.ndarray:
    starts, ends = as_ints(starts), as_ints(ends)
    if len(starts) != len(ends):
        raise ValueError(f"Slice: {len(starts)} starts but {len(ends)} ends")
    axes = list(range(len(starts))) if axes is None else as_ints(axes)
    steps = [1] * len(starts) if steps is None else as_ints(steps)
    if not len(axes) == len(steps) == len(starts):
        raise ValueError("Slice: starts, ends, axes and steps must have the same length")
    index: list[slice] = [slice(None)] * data.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        a = normalize_axis(axis, data.ndim, "Slice")
        d = data.shape[a]
        if step == 0:
            raise ValueError("Slice: steps cannot be 0")
        start = start + d if start < 0 else start
        end = end + d if end < 0 else end
        if step > 0:
            index[a] = slice(_clamp(start, 0, d), _clamp(end, 0, d), step)
        else:
            # Python reads -1 as "last", so a clamped end of -1 (before index 0) becomes None.
            end = _clamp(end, -1, d - 1)
            index[a] = slice(_clamp(start, 0, d - 1), None if end < 0 else end, step)
    return data[tuple(index)]


@register("Slice", since=1)
def slice_1(data, /, *, starts=None, ends=None, axes=None) -> np.ndarray:
    if starts is None or ends is None:
        raise ValueError("Slice-1 needs the 'starts' and 'ends' attributes")
    return _slice(data, starts, ends, axes, None)


@register("Slice", since=(10, 11, 13))
def slice_(data, starts, ends, axes=None, steps=None, /) -> np.ndarray:
    return _slice(data, starts, ends, axes, steps)


# -- broadcasting and repetition -------------------------------------------------------------
@register("Expand", since=(8, 13))
def expand(data, shape, /) -> np.ndarray:
    target = as_ints(shape)
    try:
        out_shape = np.broadcast_shapes(data.shape, tuple(target))
    except ValueError as e:
        raise ValueError(f"Expand: cannot broadcast {data.shape} to {target}") from e
    return np.broadcast_to(data, out_shape).copy()


@register("Tile", since=1)
def tile_1(data, tiles, axis, /) -> np.ndarray:
    reps = [1] * data.ndim
    reps[normalize_axis(as_int(axis, "Tile axis"), data.ndim, "Tile")] = as_int(tiles, "Tile tiles")
    return np.tile(data, reps)


@register("Tile", since=(6, 13))
def tile(data, repeats, /) -> np.ndarray:
    reps = as_ints(repeats)
    if len(reps) != data.ndim:
        raise ValueError(f"Tile: {len(reps)} repeats for a tensor of rank {data.ndim}")
    if any(r < 0 for r in reps):
        raise ValueError(f"Tile: negative repeats {reps}")
    return np.tile(data, reps)


# -- padding ---------------------------------------------------------------------------------
_PAD_MODES = ("constant", "reflect", "edge", "wrap")


def _source_indices(n: int, before: int, after: int, mode: str) -> np.ndarray:
    """For each output position along an axis, the input index it copies (non-constant)."""
    i = np.arange(-before, n + after)
    if i.size and n == 0:
        raise ValueError(f"Pad: mode '{mode}' cannot pad an empty axis")
    if mode == "edge":
        return np.clip(i, 0, n - 1)
    if mode == "wrap":
        return np.mod(i, n)
    if n == 1:
        return np.zeros_like(i)
    period = 2 * (n - 1)
    m = np.mod(i, period)
    return np.where(m < n, m, period - m)


def _pad_constant(data: np.ndarray, before: list[int], after: list[int], value: Any) -> np.ndarray:
    out_shape = [n + b + e for n, b, e in zip(data.shape, before, after, strict=True)]
    if any(d < 0 for d in out_shape):
        raise ValueError(f"Pad: pads {before + after} crop more than the shape {data.shape}")
    out = np.full(out_shape, value, dtype=data.dtype)
    src = tuple(
        slice(max(0, -b), n + min(0, e)) for n, b, e in zip(data.shape, before, after, strict=True)
    )
    dst = tuple(
        slice(max(0, b), max(0, b) + d) for b, d in zip(before, data[src].shape, strict=True)
    )
    out[dst] = data[src]
    return out


def _pad(data: np.ndarray, pads: list[int], mode: str, value: Any, axes: list[int] | None):
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode not in _PAD_MODES:
        raise ValueError(f"Pad: unsupported mode '{mode}'")
    r = data.ndim
    axes = list(range(r)) if axes is None else [normalize_axis(a, r, "Pad") for a in axes]
    if len(pads) != 2 * len(axes):
        raise ValueError(f"Pad: {len(pads)} pads for {len(axes)} axes (need twice as many)")
    before, after = [0] * r, [0] * r
    for k, a in enumerate(axes):
        before[a], after[a] = pads[k], pads[k + len(axes)]
    if mode == "constant":
        return _pad_constant(data, before, after, value)
    out = data
    for a in range(r):
        if before[a] or after[a]:
            out = np.take(out, _source_indices(out.shape[a], before[a], after[a], mode), axis=a)
    return out


def _pad_value(data: np.ndarray, value: Any) -> Any:
    if value is None or np.size(value) == 0:
        return zero_of(data.dtype)
    return np.asarray(value).reshape(-1)[0]


@register("Pad", since=1)
def pad_1(data, /, *, paddings=None, mode="constant", value=0.0) -> np.ndarray:
    if paddings is None:
        raise ValueError("Pad-1 needs the 'paddings' attribute")
    return _pad(data, as_ints(paddings), mode, _pad_value(data, value), None)


@register("Pad", since=2)
def pad_2(data, /, *, pads=None, mode="constant", value=0.0) -> np.ndarray:
    if pads is None:
        raise ValueError("Pad-2 needs the 'pads' attribute")
    return _pad(data, as_ints(pads), mode, _pad_value(data, value), None)


@register("Pad", since=(11, 13, 18, 19, 21, 23, 24, 25))
def pad(data, pads, constant_value=None, axes=None, /, *, mode="constant") -> np.ndarray:
    axes_list = None if axes is None else as_ints(axes)
    return _pad(data, as_ints(pads), mode, _pad_value(data, constant_value), axes_list)


@register("CenterCropPad", since=18)
def center_crop_pad(input_data, shape, /, *, axes=None) -> np.ndarray:
    """Crop windows start rounded down; odd padding puts the extra element at the end."""
    x = input_data
    r = x.ndim
    axes_list = (
        list(range(r))
        if axes is None
        else [normalize_axis(a, r, "CenterCropPad") for a in as_ints(axes)]
    )
    target = as_ints(shape)
    if len(target) != len(axes_list):
        raise ValueError(f"CenterCropPad: {len(target)} sizes for {len(axes_list)} axes")
    out_shape = list(x.shape)
    src = [slice(None)] * r
    dst = [slice(None)] * r
    for a, t in zip(axes_list, target, strict=True):
        n = x.shape[a]
        if t < 0:
            raise ValueError(f"CenterCropPad: negative size {t}")
        out_shape[a] = t
        if n >= t:
            start = (n - t) // 2
            src[a] = slice(start, start + t)
        else:
            start = (t - n) // 2
            dst[a] = slice(start, start + n)
    out = np.full(out_shape, zero_of(x.dtype), dtype=x.dtype)
    out[tuple(dst)] = x[tuple(src)]
    return out


# -- identity and dropout --------------------------------------------------------------------
@register("Identity", since=(1, 13, 14, 16, 19, 21, 23, 24, 25))
def identity(x, /):
    """Tensors pass through; a sequence is a new list; an empty optional stays None."""
    return list(x) if isinstance(x, list) else x


@register("Dropout", since=(1, 6, 7))
def dropout_1(data, /, *, ratio=0.5, is_test=0, consumed_inputs=None) -> tuple:
    """An inference runtime runs Dropout as a copy; the mask (type T here) is all ones."""
    return data, np.ones(data.shape, dtype=data.dtype)


@register("Dropout", since=10)
def dropout_10(data, /, *, ratio=0.5) -> tuple:
    """Inference: a copy of the input and an all-true boolean mask."""
    return data, np.ones(data.shape, dtype=bool)


def _keep_mask(shape: tuple[int, ...], ratio: float, seed: int | None) -> np.ndarray:
    """Keep each element with probability 1 - ratio. A seed selects a Mersenne Twister
    stream, so seeded runs repeat; without one fresh entropy is drawn each run."""
    if seed is None:
        u = np.random.default_rng().random(shape)
    else:
        u = np.random.RandomState(int(seed) & 0xFFFFFFFF).uniform(0.0, 1.0, shape)
    return u >= ratio


@register("Dropout", since=(12, 13, 22))
def dropout(data, ratio=None, training_mode=None, /, *, seed=None) -> tuple:
    """output = data * mask / (1 - ratio) when ``training_mode`` is true, else a copy."""
    training = training_mode is not None and bool(np.asarray(training_mode).reshape(-1)[0])
    r = 0.5 if ratio is None else float(np.asarray(ratio).reshape(-1)[0])
    if not training or r == 0.0:
        return data, np.ones(data.shape, dtype=bool)
    if not 0.0 <= r < 1.0:
        raise ValueError(f"Dropout: ratio {r} is outside [0, 1)")
    mask = _keep_mask(data.shape, r, seed)
    compute = data.astype(np.float32) if data.dtype.itemsize < 4 else data
    scale = np.asarray(1.0 / (1.0 - r), dtype=compute.dtype)
    out = (compute * mask * scale).astype(data.dtype, copy=False)
    return out, mask


# -- block rearrangements --------------------------------------------------------------------
def _check_4d(x: np.ndarray, op: str) -> tuple[int, int, int, int]:
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input, got rank {x.ndim}")
    return x.shape


def _mode(mode: str | bytes, op: str) -> str:
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode not in ("DCR", "CRD"):
        raise ValueError(f"{op}: unknown mode '{mode}'")
    return mode


@register("DepthToSpace", since=(1, 11, 13, 28))
def depth_to_space(x, /, *, blocksize=None, mode="DCR") -> np.ndarray:
    if blocksize is None or blocksize <= 0:
        raise ValueError("DepthToSpace needs a positive 'blocksize' attribute")
    b, c, h, w = _check_4d(x, "DepthToSpace")
    bs = blocksize
    if c % (bs * bs):
        raise ValueError(f"DepthToSpace: {c} channels are not divisible by blocksize² {bs * bs}")
    c_out = c // (bs * bs)
    if _mode(mode, "DepthToSpace") == "DCR":
        tmp = x.reshape(b, bs, bs, c_out, h, w).transpose(0, 3, 4, 1, 5, 2)
    else:
        tmp = x.reshape(b, c_out, bs, bs, h, w).transpose(0, 1, 4, 2, 5, 3)
    return tmp.reshape(b, c_out, h * bs, w * bs)


@register("SpaceToDepth", since=(1, 13, 28))
def space_to_depth(x, /, *, blocksize=None, mode="DCR") -> np.ndarray:
    """The inverse of DepthToSpace in the same mode."""
    if blocksize is None or blocksize <= 0:
        raise ValueError("SpaceToDepth needs a positive 'blocksize' attribute")
    b, c, h, w = _check_4d(x, "SpaceToDepth")
    bs = blocksize
    if h % bs or w % bs:
        raise ValueError(f"SpaceToDepth: spatial shape {(h, w)} not divisible by {bs}")
    tmp = x.reshape(b, c, h // bs, bs, w // bs, bs)
    if _mode(mode, "SpaceToDepth") == "DCR":
        tmp = tmp.transpose(0, 3, 5, 1, 2, 4)
    else:
        tmp = tmp.transpose(0, 1, 3, 5, 2, 4)
    return tmp.reshape(b, c * bs * bs, h // bs, w // bs)


# -- triangular parts and sequence reversal --------------------------------------------------
@register("Trilu", since=14)
def trilu(x, k=None, /, *, upper=1) -> np.ndarray:
    if x.ndim < 2:
        raise ValueError(f"Trilu: expected rank >= 2, got {x.ndim}")
    kk = 0 if k is None else as_int(k, "Trilu k")
    n, m = x.shape[-2:]
    diff = np.arange(m)[None, :] - np.arange(n)[:, None]
    keep = diff >= kk if upper else diff <= kk
    out = np.full(x.shape, zero_of(x.dtype), dtype=x.dtype)
    np.copyto(out, x, where=np.broadcast_to(keep, x.shape))
    return out


@register("ReverseSequence", since=(10, 28))
def reverse_sequence(x, sequence_lens, /, *, batch_axis=1, time_axis=0) -> np.ndarray:
    """Reverse the first ``sequence_lens[b]`` steps of each batch entry, keep the rest."""
    if x.ndim < 2:
        raise ValueError(f"ReverseSequence: expected rank >= 2, got {x.ndim}")
    ba = normalize_axis(batch_axis, x.ndim, "ReverseSequence")
    ta = normalize_axis(time_axis, x.ndim, "ReverseSequence")
    if ba == ta:
        raise ValueError("ReverseSequence: batch_axis and time_axis must differ")
    moved = np.moveaxis(x, (ba, ta), (0, 1))
    batch, steps = moved.shape[:2]
    lens = np.asarray(sequence_lens, dtype=np.int64).reshape(-1)
    if lens.shape[0] != batch:
        raise ValueError(f"ReverseSequence: {lens.shape[0]} lengths for a batch of {batch}")
    if np.any((lens < 0) | (lens > steps)):
        raise ValueError(f"ReverseSequence: sequence lengths must lie in [0, {steps}]")
    t = np.arange(steps)[None, :]
    src = np.where(t < lens[:, None], lens[:, None] - 1 - t, t)
    out = moved[np.arange(batch)[:, None], src]
    return np.moveaxis(out, (0, 1), (ba, ta))
