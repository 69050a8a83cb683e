"""Evaluating a compiled forest (``_tree_forest._Forest``): the walks, the leaf votes, and the
choice of evaluator per session and call (``_Runner``).

A run walks every (row, tree) pair at once, one depth level per step:

    node = children[2 * node + (x[row, feature[node]] <= threshold[node])]

so the cost is ``depth`` vectorized gathers over ``rows x trees`` indices, whatever the forest
shape. Trees are walked deepest first, so a level only touches the trees not finished yet.
Rows are processed in blocks so the working arrays stay cache sized, and a large batch is
split by rows over a few threads (NumPy's gathers and ufuncs release the GIL). Every row's
result is computed the same way whatever the batch or thread split, so results are
bit-identical between a batch and its rows one by one.

Other evaluators find the same leaves where they cost less: every node at once for small
batches of small forests (``_AllNodes``), one row through a big forest (``_OneRow``: the
level walk, or for trees of at most 64 leaves every node's condition and bit masks),
per-feature bit masks for larger batches of forests of small trees (``_tree_bits``), compiled
walks for big forests (``_tree_jit``, numba).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np
from onnx import TensorProto

from onnxpy.kernels import jit
from onnxpy.kernels.ai_onnx_ml import _tree_bits, _tree_prefix
from onnxpy.kernels.ai_onnx_ml._tree_forest import (
    _UFUNCS,
    GT,
    GTE,
    LEQ,
    LT,
    _first_of,
    _Forest,
)
from onnxpy.kernels.ai_onnx_ml._tree_walk import (
    _features,
    _leaves,
    _legacy_input,
)
from onnxpy.kernels.registry import NodeInfo
from onnxpy.kernels.threads import in_parts, kernel_threads

# Leaf vote tables up to this many cells are dense [targets, leaves]; larger ones stay sparse.
_DENSE_LIMIT = 1 << 22
# Leaf cells ([rows, trees]) gathered at once per target when aggregating the votes.
_GATHER_CELLS = 1 << 18
# The all-nodes evaluation (_AllNodes) serves forests of at most _ALL_NODES_NODES nodes, for
# batches of at most _ALL_NODES_CELLS (row, node) cells.
_ALL_NODES_NODES = 1 << 12
_ALL_NODES_CELLS = 1 << 15
# A batch is split over threads when each thread gets at least this many (row, tree) pairs.
_PAIRS_PER_THREAD = 1 << 15

# With numba importable, forests are walked by compiled kernels (_tree_jit); tests set this
# to keep the NumPy walks (ONNXPY_DISABLE_JIT=1 does it for the process, see kernels/jit.py).
_JIT_DISABLED = jit.DISABLED
# A compiled run is split over threads when each thread gets at least this many pairs. The
# walk is bound by cache misses on a forest of megabytes, which two threads overlap: the
# 300-tree depth-14 forest at batch 200 took 8.8 ms in one part, 4.9 ms in two (onnxruntime
# 7.9 ms); at 1 << 16 only batches over 436 rows were split.
_JIT_PAIRS_PER_THREAD = 1 << 12
# Forests walked by the compiled kernels: at least this many trees x levels. Below it the NumPy
# walks stay within about 2x (batch 1) to 3x (batch 1000) of onnxruntime (iris, 10 trees:
# 9.6 us and 0.34 ms vs 5.9 us and 0.12 ms), while loading numba costs ~0.5 s and ~100 MB
# resident (LLVM) once per process, more than such a model and runtime together. Above it the
# NumPy walk falls far behind at small batches (300 trees x 14 levels: 58 us vs 13 us; compiled
# 28 us).
_JIT_MIN_WALK = 1000
# ... and at least this many nodes. numba's fixed costs (~90 MB of LLVM resident, 0.5-1.5 s of
# session creation) must be small against the model's own: they are for a 300-tree depth-14
# forest (957K nodes; onnxruntime peaks at 487 MB for it), not for a LightGBM classifier of
# 600 trees x 31 leaves (36.6K nodes): compiled, its session took 1.84 s vs 0.29 s and peaked at
# 188 vs 100 MB (onnxruntime: 0.13 s, 83 MB) to run batch 1 in 45 instead of 97 us
# (onnxruntime 16 us), and batch 1000 no faster (68 vs 62 ms; onnxruntime 66-72 ms).
# Since then one row of such a forest takes bit masks (_tree_bits.RowBits): ~35 us in NumPy.
_JIT_MIN_NODES = 1 << 18


def _jit_module():
    """The compiled-kernel module, imported on first use; None without numba (or disabled)."""
    return None if _JIT_DISABLED else jit.load("onnxpy.kernels.ai_onnx_ml._tree_jit")


# -- leaf votes ------------------------------------------------------------------------------
class _Votes:
    """Aggregates the weights of the reached leaves into [N, targets] float64 scores.

    The dense table is reduced over the trees in order, one row of the batch per column
    (``reduce`` along axis 1 of [targets, trees, rows]): a row's score does not depend on the
    batch it came in.
    """

    def __init__(
        self,
        n_leaves: int,
        n_targets: int,
        rows: np.ndarray,
        targets: np.ndarray,
        weights: np.ndarray,
        function: str,
        n_trees: int,
    ) -> None:
        if len(targets) and (targets.min() < 0 or targets.max() >= n_targets):
            raise ValueError(f"a leaf target id is outside [0, {n_targets})")
        self.n_targets = n_targets
        self.function = function
        self.n_trees = n_trees
        self.dense = n_leaves * n_targets <= _DENSE_LIMIT
        weights = weights.astype(np.float64)
        if self.dense:
            # Stored [targets, leaves] so each target's votes are one contiguous row.
            table = self._dense(n_leaves, n_targets, rows, targets, weights, function)
            self.table = np.ascontiguousarray(table.T)
        else:
            order = np.argsort(rows, kind="stable")
            self.targets = targets[order]
            self.weights = weights[order]
            self.counts = np.bincount(rows, minlength=n_leaves).astype(np.int64)
            self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)

    @staticmethod
    def _dense(n_leaves, n_targets, rows, targets, weights, function) -> np.ndarray:
        if function in ("SUM", "AVERAGE"):
            table = np.zeros((n_leaves, n_targets), dtype=np.float64)
            np.add.at(table, (rows, targets), weights)
        elif function == "MIN":
            table = np.full((n_leaves, n_targets), np.inf)
            np.minimum.at(table, (rows, targets), weights)
        else:
            table = np.full((n_leaves, n_targets), -np.inf)
            np.maximum.at(table, (rows, targets), weights)
        return table

    def __call__(self, leaves: np.ndarray) -> np.ndarray:
        """Scores [N, targets] from the leaf rows reached, ``leaves`` [trees, N]."""
        n_trees, n_rows = leaves.shape
        fill = {"MIN": np.inf, "MAX": -np.inf}.get(self.function, 0.0)
        out = np.full((n_rows, self.n_targets), fill)
        if leaves.size:
            step = max(1, _GATHER_CELLS // max(1, n_trees * self.n_targets))
            for start in range(0, n_rows, step):
                chunk = leaves[:, start : start + step]
                part = out[start : start + step]
                if self.dense:
                    self._reduce_dense(part, chunk)
                else:
                    self._reduce_sparse(part, chunk.T)
        if self.function in ("MIN", "MAX"):
            out[np.isinf(out)] = 0.0
        elif self.function == "AVERAGE" and self.n_trees:
            out /= self.n_trees
        return out

    def _reduce_dense(self, out: np.ndarray, chunk: np.ndarray) -> None:
        # One gather for all targets, [targets, trees, rows], reduced tree after tree.
        reduce = {"MIN": np.minimum, "MAX": np.maximum}.get(self.function, np.add)
        out[...] = reduce.reduce(self.table.take(chunk, axis=1), axis=1).T

    def _reduce_sparse(self, out: np.ndarray, chunk: np.ndarray) -> None:
        flat = chunk.ravel()  # row-major: a row's trees in order
        counts = self.counts[flat]
        total = int(counts.sum())
        if total == 0:
            return
        row = np.repeat(np.arange(chunk.shape[0], dtype=np.int64), chunk.shape[1])
        row = np.repeat(row, counts)
        first = np.repeat(self.starts[flat] - (np.cumsum(counts) - counts), counts)
        entry = first + np.arange(total, dtype=np.int64)
        cell = row * self.n_targets + self.targets[entry]
        w = self.weights[entry]
        flat_out = out.reshape(-1)
        if self.function in ("SUM", "AVERAGE"):
            flat_out += np.bincount(cell, weights=w, minlength=flat_out.size)
        elif self.function == "MIN":
            np.minimum.at(flat_out, cell, w)
        else:
            np.maximum.at(flat_out, cell, w)


class _AllNodes:
    """Small batches of a small forest: every node's condition at once, then pointer jumping.

    A step of the walk is ``next[node] = first[node] + cond[node]`` (leaves point at
    themselves). With the condition of every node computed for the batch in three calls,
    ``next`` composed with itself ``k`` times moves ``2**k`` levels, so a forest of depth
    ``d`` needs ``ceil(log2(d))`` gathers whatever its shape; with several rows, when
    ``d`` small gathers from the roots cost less than those big ones, the roots follow
    ``next`` level by level instead. The reached leaves' votes are one gather and one
    reduction. The cost grows with rows x nodes, so it serves only
    while that stays small (see ``_ALL_NODES_NODES``). Votes are reduced in the same order
    and layout as ``_Votes``, so results are bit-identical to the level walk.
    """

    def __init__(self, forest: _Forest, votes: _Votes) -> None:
        packed = forest.packed
        m = len(packed)
        self.m = m
        self.n_trees = forest.n_trees
        self.feature = packed[:, 0].astype(np.intp)
        self.threshold = np.ascontiguousarray(packed[:, 1]).view(np.float32)
        self.first = _first_of(packed).astype(np.intp)
        self.ufunc = _UFUNCS[forest.single_mode]
        self.jumps = max(0, (forest.depth - 1).bit_length())
        rows = forest.packed_leaf_row
        at = np.flatnonzero(rows >= 0)
        # Votes per packed node, [targets, nodes]; interior nodes are never gathered.
        self.table = np.zeros((votes.n_targets, m), dtype=np.float64)
        self.table[:, at] = votes.table[:, rows[at]]
        self.reduce = {"MIN": np.minimum, "MAX": np.maximum}.get(votes.function, np.add)
        self.function = votes.function
        self.depth = forest.depth
        # Estimated nanoseconds for one row on 2 cores (weighed against _OneRow's): ~3.5 us of
        # calls, ~1.5 ns per node for the conditions, ~0.5 us + 0.3 ns per node per jump.
        self.row_cost = 3500 + 1.5 * m + self.jumps * (500 + 0.3 * m)
        self._rows: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}

    def _row_tables(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``first`` shifted to each row's block of the flattened [n, nodes] table, the row
        starts, and the roots [trees, n] to walk from (None: jump instead); cached per batch
        size (small batches only)."""
        tables = self._rows.get(n)
        if tables is None:
            base = np.arange(n, dtype=np.intp) * self.m
            roots = None
            # Per call ~0.5 us plus ~1 ns per element gathered.
            walk = self.depth * (500 + self.n_trees * n)
            jump = self.jumps * (500 + self.m * n)
            if walk < jump:
                roots = np.arange(self.n_trees, dtype=np.intp)[:, None] + base
            tables = self._rows[n] = (self.first + base[:, None], base, roots)
        return tables

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Scores [N, targets] of ``x`` [N, F] (C-contiguous)."""
        n = len(x)
        if n == 1:
            nxt = np.add(self.first, self.ufunc(x.take(self.feature), self.threshold))
            for _ in range(self.jumps):
                nxt = nxt.take(nxt)
            leaves = nxt[: self.n_trees, None]
        else:
            first, base, roots = self._row_tables(n)
            cond = self.ufunc(x.take(self.feature, axis=1), self.threshold)
            nxt = np.add(first, cond)
            if roots is None:
                for _ in range(self.jumps):
                    nxt = nxt.take(nxt)
                leaves = np.subtract(nxt[:, : self.n_trees], base[:, None]).T
            else:
                leaves = roots
                for _ in range(self.depth):
                    leaves = nxt.take(leaves)
                leaves -= base
        # The same gather and reduction as _Votes._reduce_dense (bit-identical scores).
        scores = self.reduce.reduce(self.table.take(leaves, axis=1), axis=1).T
        return _finish_votes(scores, self.function, self.n_trees)


def _finish_votes(scores: np.ndarray, function: str, n_trees: int) -> np.ndarray:
    """MIN/MAX targets no leaf voted for score 0; AVERAGE divides by the tree count."""
    if function in ("MIN", "MAX"):
        scores[np.isinf(scores)] = 0.0
    elif function == "AVERAGE" and n_trees:
        scores /= n_trees
    return scores


class _OneRow:
    """One row through a big packed forest: the level walk with nothing else around it, or,
    for trees of at most 64 leaves when it costs less, bit masks: prefix tables over the
    distinct thresholds (``_tree_prefix.RowPrefix``) or every node's condition
    (``_tree_bits.RowBits``).

    Same leaves as ``_walk_packed`` for a single row (no offsets), then the votes gathered and
    reduced as ``_Votes._reduce_dense`` does, so the scores are bit-identical to a batch's.
    """

    def __init__(
        self, forest: _Forest, votes: _Votes, prefix: _tree_prefix.RowPrefix | None
    ) -> None:
        self.packed = forest.packed
        self.ufunc = _UFUNCS[forest.single_mode]
        self.n_trees = forest.n_trees
        self.alive = forest.alive
        self.leaf_row = forest.packed_leaf_row
        self.table = votes.table
        self.reduce = {"MIN": np.minimum, "MAX": np.maximum}.get(votes.function, np.add)
        self.function = votes.function
        self.bits, self.cost = _row_finder(forest, prefix)
        if self.bits is not None:
            # Votes per (tree, leaf bit) cell: the masks' cells index it without the leaf rows.
            self.table = votes.table.take(self.bits.leaf_rows, axis=1)

    def _walk(self, x: np.ndarray) -> np.ndarray:
        n = self.n_trees
        node = np.arange(n, dtype=np.intp)
        buf = np.empty((n, 4), dtype=np.int32)
        cond = np.empty(n, dtype=bool)
        packed, ufunc, add = self.packed, self.ufunc, np.add
        last = -1
        for k in self.alive:
            if k != last:  # the views change only when trees finish
                cur, rec, c = node[:k], buf[:k], cond[:k]
                feat, thr, first = rec[:, 0], rec[:, 1].view(np.float32), _first_of(rec)
                last = k
            packed.take(cur, 0, rec, "clip")
            ufunc(x.take(feat), thr, c)
            add(first, c, cur)
        return self.leaf_row.take(node)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        found = self._walk(x) if self.bits is None else self.bits.cells(x[0])
        scores = self.reduce.reduce(self.table.take(found, axis=1), axis=1)[None]
        return _finish_votes(scores, self.function, self.n_trees)


# One row through prefix tables (_tree_prefix.RowPrefix): at most this many bytes of tables, and
# at most _PREFIX_BYTES_PER_NODE per node of the forest (a 600-tree LightGBM classifier of
# 36.6K nodes: 10 MB, 14 us per row against RowBits' 30 us).
_PREFIX_MAX_BYTES = 16 << 20
_PREFIX_BYTES_PER_NODE = 512


def _row_finder(
    forest: _Forest, prefix: _tree_prefix.RowPrefix | None
) -> tuple[_tree_prefix.RowPrefix | _tree_bits.RowBits | None, float]:
    """The cheapest one-row leaf finder of a packed forest (None: the level walk), given its
    prefix tables (``_row_prefix``, None where refused), and its estimated nanoseconds per
    row on 2 cores: the walk makes four NumPy calls (~0.8 us each) per level plus ~3 ns per
    (tree, level) step; RowBits ~10 calls plus ~1.6 ns per node; RowPrefix ~10 calls plus
    ~0.4 ns per distinct (feature, threshold) pair and per (used feature, tree) table cell."""
    walk = 3200 * forest.depth + 3 * sum(forest.alive)
    if forest.n_trees == 0:
        return None, walk
    if prefix is not None:
        cost = 7000 + 0.4 * (prefix.n_pairs + prefix.n_used * forest.n_trees)
        if cost < walk:
            return prefix, cost
    interior = int(np.count_nonzero(forest.packed_leaf_row < 0))
    if _row_bits_cost(interior) >= walk:
        return None, walk
    bits = _row_bits(forest)
    if bits is None:
        return None, walk
    return bits, _row_bits_cost(bits.n_nodes)


def _row_bits_cost(nodes: int) -> float:
    """``RowBits``' estimated nanoseconds for one row of ``nodes`` interior nodes."""
    return 8000 + 1.6 * nodes


def _row_prefix(forest: _Forest) -> _tree_prefix.RowPrefix | None:
    """``RowPrefix`` for a packed forest of one ordered comparison, when its tables fit."""
    mode = forest.single_mode
    if forest.packed is None or mode not in (LEQ, LT, GTE, GT) or forest.n_trees == 0:
        return None
    limit = min(_PREFIX_MAX_BYTES, _PREFIX_BYTES_PER_NODE * len(forest.packed))
    try:
        return _tree_prefix.RowPrefix(
            *_packed_fields(forest), _UFUNCS[mode], negate=mode in (GTE, GT), max_bytes=limit
        )
    except ValueError:  # tables too big, a tree of over 64 leaves, a NaN threshold
        return None


def _row_bits(forest: _Forest) -> _tree_bits.RowBits | None:
    """``RowBits`` for one row of a packed forest whenever its trees fit the masks
    (``_row_finder`` weighs its cost against the level walk's)."""
    if forest.n_trees == 0:
        return None
    try:
        return _tree_bits.RowBits(*_packed_fields(forest), _UFUNCS[forest.single_mode])
    except ValueError:  # a tree of over 64 leaves
        return None


def _packed_fields(forest: _Forest) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """The packed forest as the bit-mask finders take it: feature, float32 threshold, first
    child per record, leaf row per record, tree count."""
    packed = forest.packed
    threshold = np.ascontiguousarray(packed[:, 1]).view(np.float32)
    return packed[:, 0], threshold, _first_of(packed), forest.packed_leaf_row, forest.n_trees


def _bit_forest(forest: _Forest) -> _tree_bits.BitForest | None:
    """Bit-mask leaf finding (``_tree_bits``) for a packed forest of one ordered comparison."""
    mode = forest.single_mode
    if forest.packed is None or mode not in (LEQ, LT, GTE, GT) or forest.n_trees == 0:
        return None
    try:
        return _tree_bits.BitForest(
            *_packed_fields(forest),
            strict=mode in (LT, GT),
            negate=mode in (GTE, GT),
        )
    except ValueError:  # too big for its tables, a tree of over 64 leaves, a NaN threshold
        return None


def _all_nodes(forest: _Forest, votes: _Votes) -> _AllNodes | None:
    """The all-nodes evaluator when the forest is small enough for it to pay off."""
    if forest.packed is None or not votes.dense or len(forest.packed) > _ALL_NODES_NODES:
        return None
    return _AllNodes(forest, votes)


class _Runner:
    """Scores of a compiled forest: input checks and the choice of evaluation per call."""

    def __init__(
        self, forest: _Forest, votes: _Votes, threads: int, input_dtype: np.dtype | None = None
    ) -> None:
        self.forest = forest
        self.votes = votes
        self.threads = threads
        self.dtype = np.dtype(np.float32 if forest.exact32 else np.float64)
        self.min_features = forest.max_feature + 1 if forest.n_trees else 0
        nodes = len(forest.leaf_row)
        big = forest.n_trees * forest.depth >= _JIT_MIN_WALK and nodes >= _JIT_MIN_NODES
        jit = _jit_module() if big else None
        self.jit = None
        if jit is not None:
            # Compiled for the features' dtype the model's input gives (see _features).
            dtype = self.dtype
            if input_dtype is not None and np.dtype(input_dtype) != np.float32:
                dtype = np.dtype(np.float64)
            self.jit = jit.JitForest(forest, votes, (dtype,))
            return
        # Leaves of a batch by bit masks, when they cost less than the level walk (about 5 ns
        # per (row, tree, level) step, measured on 2 cores): the prefix tables over distinct
        # pairs, else (tables too big for them) BitForest's per-node ones.
        prefix = _row_prefix(forest)
        walk = 5 * sum(forest.alive)
        self.batch_leaves = None
        if prefix is not None:
            if prefix.cost_per_row < walk:
                self.batch_leaves = prefix.leaves_batch
        else:
            bits = _bit_forest(forest)
            if bits is not None and bits.cost_per_row < walk:
                self.batch_leaves = bits.leaves
        self.small = _all_nodes(forest, votes)
        # Below this many rows the all-nodes evaluation is used.
        self.small_rows = (
            0 if self.small is None else max(1, _ALL_NODES_CELLS // max(1, self.small.m))
        )
        # One row: _OneRow where the all-nodes evaluation is not served or costs more.
        self.one_row = None
        if forest.packed is not None and votes.dense:
            one_row = _OneRow(forest, votes, prefix)
            if self.small is None or one_row.cost < self.small.row_cost:
                self.one_row = one_row
        self.no_nan_check = forest.nan_true is None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Scores [N, targets] (float64) of a numeric input, rows along axis 0."""
        if not (
            x.__class__ is np.ndarray
            and x.dtype == self.dtype
            and x.ndim == 2
            and x.flags.c_contiguous
            and x.shape[1] >= self.min_features
        ):
            x = _features(self.forest, _legacy_input(x))
        if self.jit is not None:
            return self._jit_scores(x)
        n = len(x)
        if n == 1 and self.one_row is not None and (self.no_nan_check or not _has_nan(x)):
            return self.one_row(x)
        if 0 < n <= self.small_rows and (self.no_nan_check or not _has_nan(x)):
            return self.small(x)
        if self.batch_leaves is not None and (self.no_nan_check or not _has_nan(x)):
            return _scores(self.forest, self.votes, x, self.threads, self.batch_leaves)
        return _scores(self.forest, self.votes, x, self.threads)

    def _jit_scores(self, x: np.ndarray) -> np.ndarray:
        """The compiled walk, its rows split over threads when the batch is big enough."""
        pairs = len(x) * self.forest.n_trees
        if pairs < 2 * _JIT_PAIRS_PER_THREAD:  # one part: its trees split, where that pays
            threads = min(self.threads, kernel_threads())
            if threads > 1 and self.jit.parallel:
                out = np.empty((len(x), self.votes.n_targets))
                self.jit.fill_parallel(x, out, threads)
                return out
            return self.jit(x)
        n = len(x)
        parts = min(self.threads, kernel_threads(), pairs // _JIT_PAIRS_PER_THREAD)
        if parts <= 1:
            return self.jit(x)
        out = np.empty((n, self.votes.n_targets))
        fill = self.jit.fill
        in_parts(n, parts, lambda a, b: fill(x[a:b], out[a:b]))
        return out


def _has_nan(x: np.ndarray) -> bool:
    """Whether the float array ``x`` (C-contiguous) holds a NaN: its dot product with itself
    is NaN exactly then (squares are never negative: no inf - inf), in one BLAS call where
    ``np.isnan(x).any()`` makes two (1.4 vs 0.8 us on one row)."""
    flat = x.reshape(-1)
    return math.isnan(np.dot(flat, flat))


_WALKED_AS_FLOAT32 = frozenset(
    (
        TensorProto.FLOAT,
        TensorProto.FLOAT16,
        TensorProto.BFLOAT16,
        TensorProto.FLOAT8E4M3FN,
        TensorProto.FLOAT8E4M3FNUZ,
        TensorProto.FLOAT8E5M2,
        TensorProto.FLOAT8E5M2FNUZ,
    )
)


def _input_dtype(info: NodeInfo | None) -> np.dtype | None:
    """The dtype the features reach the walk in, from the node's input type (None: unknown):
    float32 for float (and narrower floats), float64 for double and integers."""
    types = getattr(info, "input_types", None)
    tensor = getattr(types[0], "tensor_type", None) if types else None
    elem = getattr(tensor, "elem_type", 0)
    if not elem:
        return None
    return np.dtype(np.float32 if elem in _WALKED_AS_FLOAT32 else np.float64)


def _scores(
    forest: _Forest,
    votes: _Votes,
    x: np.ndarray,
    threads: int,
    leaves_of: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Aggregated votes [N, targets] of the rows of ``x`` [N, F], over up to ``threads``;
    ``leaves_of`` finds the leaves (default: the level walk, ``_leaves``)."""
    x = _features(forest, x)
    if leaves_of is None:
        leaves_of = partial(_leaves, forest)
    n_rows = len(x)
    parts = min(threads, kernel_threads(), n_rows * forest.n_trees // _PAIRS_PER_THREAD)
    if parts <= 1:
        return votes(leaves_of(x))
    return np.concatenate(in_parts(n_rows, parts, lambda a, b: votes(leaves_of(x[a:b]))))
