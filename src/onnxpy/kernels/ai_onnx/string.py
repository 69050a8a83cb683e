"""String operators: StringConcat, StringNormalizer, StringSplit, RegexFullMatch, TfIdfVectorizer.

String tensors are ``object`` arrays of ``str``. Per-element work on strings (splitting, case
changes, regex matching) has no NumPy vector form, so those kernels loop over the elements once.

RegexFullMatch: the spec names RE2 syntax; onnxpy compiles patterns with Python's ``re`` after
a small translation (see :func:`re2_to_python`). Known differences that remain:

* ``re.ASCII`` is used so that ``\\w \\d \\s \\b`` are ASCII-only as in RE2; as a consequence
  ``(?i)`` folds ASCII letters only, where RE2 folds Unicode letters too. Python's ``\\s`` also
  matches ``\\v``, RE2's does not.
* Python accepts constructs RE2 rejects (look-around, back-references, atomic groups,
  possessive quantifiers); onnxpy runs them instead of refusing the pattern.
* RE2 Unicode classes (``\\pL``, ``\\p{Greek}``), ``\\C`` and negated POSIX classes
  (``[[:^alpha:]]``) have no ``re`` counterpart: such patterns are refused at session creation.
* RE2's ``\\z`` becomes ``\\Z``, ``\\Q...\\E`` is escaped literally, ``(?<name>`` becomes
  ``(?P<name>`` and POSIX classes ``[[:alpha:]]`` are expanded to ASCII ranges.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from onnxpy import errors
from onnxpy.kernels.registry import NodeInfo, register


def _strings(x: Any, op: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind == "U":
        return x.astype(object)
    if x.dtype != np.dtype(object):
        raise TypeError(f"{op}: expected a string tensor, got {x.dtype}")
    return x


def _object_array(values: list[Any], shape: tuple[int, ...]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out.reshape(shape)


# -- StringConcat --------------------------------------------------------------------------


@register("StringConcat", since=20)
def string_concat(x, y, /) -> np.ndarray:
    """Elementwise concatenation with broadcasting (object-array ``+`` is ``str`` concat)."""
    x = _strings(x, "StringConcat")
    y = _strings(y, "StringConcat")
    out = np.add(x, y, dtype=object)
    return np.asarray(out, dtype=object)


# -- StringNormalizer ----------------------------------------------------------------------


@register("StringNormalizer", since=10)
def string_normalizer(
    x, /, *, case_change_action="NONE", is_case_sensitive=0, locale=None, stopwords=None
) -> np.ndarray:
    """Drop stop words, then change case; accepts [C] and [1, C] inputs only."""
    x = _strings(x, "StringNormalizer")
    if x.ndim == 2 and x.shape[0] == 1:
        flat, two_dim = x[0], True
    elif x.ndim == 1:
        flat, two_dim = x, False
    else:
        raise ValueError(f"StringNormalizer accepts [C] or [1, C] inputs, got {x.shape}")
    if stopwords:
        if is_case_sensitive:
            keep = ~np.isin(flat, np.array(list(stopwords), dtype=object))
        else:
            stop = {w.lower() for w in stopwords}
            keep = np.array([s.lower() not in stop for s in flat], dtype=bool)
        flat = flat[keep]
    action = case_change_action.upper() if isinstance(case_change_action, str) else ""
    if action == "LOWER":
        values = [s.lower() for s in flat]
    elif action == "UPPER":
        values = [s.upper() for s in flat]
    elif action == "NONE":
        values = list(flat)
    else:
        raise ValueError(f"StringNormalizer: unknown case_change_action {case_change_action!r}")
    if not values:
        values = [""]
    return _object_array(values, (1, len(values)) if two_dim else (len(values),))


# -- StringSplit ---------------------------------------------------------------------------


@register("StringSplit", since=20)
def string_split(x, /, *, delimiter=None, maxsplit=None) -> tuple[np.ndarray, np.ndarray]:
    """Split each element; substrings padded with "" to the longest split, plus counts.

    An unset or empty delimiter splits on runs of whitespace and trims the ends, which is
    exactly ``str.split(None, maxsplit)``; a given delimiter matches ``str.split(delimiter)``.
    """
    x = _strings(x, "StringSplit")
    sep = delimiter or None
    limit = -1 if maxsplit is None else int(maxsplit)
    parts = [s.split(sep, limit) for s in x.reshape(-1)]
    lengths = np.array([len(p) for p in parts], dtype=np.int64)
    width = int(lengths.max()) if lengths.size else 0
    padded = [p + [""] * (width - len(p)) for p in parts]
    flat = [s for p in padded for s in p]
    return _object_array(flat, x.shape + (width,)), lengths.reshape(x.shape)


# -- RegexFullMatch ------------------------------------------------------------------------

_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7f",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}


def _translate_escape(pattern: str, i: int) -> tuple[str, int]:
    """Translate the escape starting at ``pattern[i] == '\\'``; returns (text, next index)."""
    nxt = pattern[i + 1] if i + 1 < len(pattern) else ""
    if nxt == "Q":
        end = pattern.find("\\E", i + 2)
        literal = pattern[i + 2 :] if end < 0 else pattern[i + 2 : end]
        return re.escape(literal), len(pattern) if end < 0 else end + 2
    if nxt == "z":
        return "\\Z", i + 2
    if nxt in ("p", "P", "C"):
        raise errors.NotImplemented(
            f"RegexFullMatch: RE2 escape '\\{nxt}' has no Python re equivalent"
        )
    return pattern[i : i + 2], i + 2


def _translate_class(pattern: str, i: int) -> tuple[str, int]:
    """Translate a bracket expression starting at ``pattern[i] == '['``."""
    out = ["["]
    i += 1
    if i < len(pattern) and pattern[i] == "^":
        out.append("^")
        i += 1
    if i < len(pattern) and pattern[i] == "]":
        out.append("\\]")
        i += 1
    while i < len(pattern) and pattern[i] != "]":
        if pattern.startswith("[:", i):
            end = pattern.find(":]", i + 2)
            name = pattern[i + 2 : end] if end > 0 else ""
            if name.startswith("^") or name not in _POSIX_CLASSES:
                raise errors.NotImplemented(
                    f"RegexFullMatch: POSIX class '[:{name}:]' is not supported"
                )
            out.append(_POSIX_CLASSES[name])
            i = end + 2
        elif pattern[i] == "\\":
            text, i = _translate_escape(pattern, i)
            out.append(text)
        elif pattern[i] == "[":
            out.append("\\[")
            i += 1
        else:
            out.append(pattern[i])
            i += 1
    if i >= len(pattern):
        raise ValueError("RegexFullMatch: unterminated character class")
    out.append("]")
    return "".join(out), i + 1


def re2_to_python(pattern: str) -> str:
    """Rewrite the RE2 constructs Python's ``re`` spells differently (see module docstring)."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            text, i = _translate_escape(pattern, i)
        elif c == "[":
            text, i = _translate_class(pattern, i)
        elif pattern.startswith("(?<", i) and pattern[i + 3 : i + 4] not in ("=", "!"):
            text, i = "(?P<", i + 3
        else:
            text, i = c, i + 1
        out.append(text)
    return "".join(out)


@register("RegexFullMatch", since=20, factory=True)
def regex_full_match(info: NodeInfo, *, pattern=None) -> Callable[[Any], np.ndarray]:
    """Compile the pattern once; each element is tested with ``fullmatch``."""
    if pattern is None:
        raise ValueError("RegexFullMatch needs the pattern attribute")
    try:
        rx = re.compile(re2_to_python(pattern), re.ASCII)
    except re.error as e:
        raise ValueError(f"RegexFullMatch: invalid pattern {pattern!r}: {e}") from e

    def run(x, /) -> np.ndarray:
        x = _strings(x, "RegexFullMatch")
        hits = [rx.fullmatch(s) is not None for s in x.reshape(-1)]
        return np.array(hits, dtype=np.bool_).reshape(x.shape)

    return run


# -- TfIdfVectorizer -----------------------------------------------------------------------


class _NgramLevel:
    """The pool's n-grams of one length, identified by extending prefixes one token at a time.

    Each extension step combines a dense prefix id with the next token id and renumbers the
    distinct results densely, so keys stay small whatever the vocabulary and n-gram length.
    """

    def __init__(self, grams: np.ndarray, base: int, first_number: int) -> None:
        self.base = base
        self.steps: list[np.ndarray] = []
        key = grams[:, 0]
        for j in range(1, grams.shape[1]):
            uniq, inverse = np.unique(key * base + grams[:, j], return_inverse=True)
            self.steps.append(uniq)
            key = inverse.reshape(-1) + 1
        size = base if grams.shape[1] == 1 else len(self.steps[-1]) + 1
        # Dense id of a whole n-gram -> its pool number (-1: not in the pool; id 0 never is).
        self.numbers = np.full(size, -1, dtype=np.int64)
        self.numbers[key] = first_number + np.arange(grams.shape[0], dtype=np.int64)

    def lookup(self, grams: np.ndarray) -> np.ndarray:
        """Pool number of each n-gram (token ids on the last axis), -1 where absent."""
        key = grams[..., 0]
        for j, uniq in enumerate(self.steps, start=1):
            combined = key * self.base + grams[..., j]
            pos = np.minimum(np.searchsorted(uniq, combined), uniq.size - 1)
            key = np.where(uniq[pos] == combined, pos + 1, 0)
        return self.numbers[key]


class _NgramPool:
    """The pool over a sorted vocabulary (token id 0 means "not in the vocabulary")."""

    def __init__(self, pool: np.ndarray, ngram_counts: list[int]) -> None:
        self.vocab = np.unique(pool)
        base = len(self.vocab) + 1
        ids = np.searchsorted(self.vocab, pool).astype(np.int64) + 1
        starts = list(ngram_counts) + [len(pool)]
        self.levels: dict[int, _NgramLevel] = {}
        number = 0  # running n-gram number across levels (indexes ngram_indexes)
        for n in range(1, len(ngram_counts) + 1):
            seg = ids[starts[n - 1] : starts[n]]
            if seg.size % n:
                raise ValueError(f"TfIdfVectorizer: pool level {n} is not a multiple of {n}")
            if seg.size:
                self.levels[n] = _NgramLevel(seg.reshape(-1, n), base, number)
            number += seg.size // n
        self.size = number

    def token_ids(self, x: np.ndarray) -> np.ndarray:
        if not self.vocab.size:
            return np.zeros(x.shape, dtype=np.int64)
        pos = np.searchsorted(self.vocab, x)
        clipped = np.minimum(pos, len(self.vocab) - 1)
        found = (pos < len(self.vocab)) & (self.vocab[clipped] == x)
        return np.where(found, pos + 1, 0).astype(np.int64)


def _count_ngrams(
    pool: _NgramPool, ids: np.ndarray, min_n: int, max_n: int, max_skip: int
) -> np.ndarray:
    """Counts [rows, pool n-grams] over every n in [min_n, max_n] and skip in [0, max_skip]."""
    rows, width = ids.shape
    counts = np.zeros(rows * pool.size, dtype=np.int64)
    row_offset = (np.arange(rows, dtype=np.int64) * pool.size)[:, None]
    for n in range(max(min_n, 1), max_n + 1):
        level = pool.levels.get(n)
        if level is None:
            continue
        for skip in range(max_skip + 1 if n > 1 else 1):
            step = skip + 1
            windows = width - (n - 1) * step
            if windows <= 0:
                break
            grams = np.stack([ids[:, k * step : k * step + windows] for k in range(n)], axis=-1)
            numbers = level.lookup(grams)
            flat = (row_offset + numbers)[numbers >= 0]
            counts += np.bincount(flat, minlength=rows * pool.size)
    return counts.reshape(rows, pool.size)


@register("TfIdfVectorizer", since=9, factory=True)
def tfidf_vectorizer(
    info: NodeInfo,
    *,
    max_gram_length=None,
    max_skip_count=None,
    min_gram_length=None,
    mode=None,
    ngram_counts=None,
    ngram_indexes=None,
    pool_int64s=None,
    pool_strings=None,
    weights=None,
) -> Callable[[Any], np.ndarray]:
    """Precompute the pool's n-gram keys; each run counts matching (skip-)n-grams per row."""
    required = {
        "max_gram_length": max_gram_length,
        "max_skip_count": max_skip_count,
        "min_gram_length": min_gram_length,
        "mode": mode,
        "ngram_counts": ngram_counts,
        "ngram_indexes": ngram_indexes,
    }
    missing = [k for k, v in required.items() if v is None]
    if missing:
        raise ValueError(f"TfIdfVectorizer needs the attributes {missing}")
    if (pool_int64s is None) == (pool_strings is None):
        raise ValueError("TfIdfVectorizer needs exactly one of pool_int64s and pool_strings")
    if mode not in ("TF", "IDF", "TFIDF"):
        raise ValueError(f"TfIdfVectorizer: unknown mode {mode!r}")
    is_string = pool_strings is not None
    raw = np.array(
        pool_strings if is_string else pool_int64s, dtype=object if is_string else np.int64
    )
    pool = _NgramPool(raw, ngram_counts)
    indexes = np.asarray(ngram_indexes, dtype=np.int64)
    if indexes.size != pool.size:
        raise ValueError(f"TfIdfVectorizer: {indexes.size} ngram_indexes for {pool.size} n-grams")
    scale = np.ones(pool.size, np.float32) if weights is None else np.asarray(weights, np.float32)
    if scale.size != pool.size:
        raise ValueError(f"TfIdfVectorizer: {scale.size} weights for {pool.size} n-grams")
    out_size = int(indexes.max()) + 1 if indexes.size else 0

    def run(x, /) -> np.ndarray:
        x = np.asarray(x)
        if (x.dtype == np.dtype(object)) != is_string:
            raise TypeError(f"TfIdfVectorizer: input type {x.dtype} does not match the pool")
        if x.ndim not in (1, 2):
            raise ValueError(f"TfIdfVectorizer accepts 1-D or 2-D inputs, got {x.shape}")
        rows = x.reshape(1, -1) if x.ndim == 1 else x
        ids = pool.token_ids(rows) if rows.size else np.zeros(rows.shape, np.int64)
        counts = _count_ngrams(
            pool, ids, int(min_gram_length), int(max_gram_length), int(max_skip_count)
        ).astype(np.float32)
        if mode == "IDF":
            counts = np.minimum(counts, 1.0).astype(np.float32) * scale
        elif mode == "TFIDF":
            counts = counts * scale
        y = np.zeros((rows.shape[0], out_size), dtype=np.float32)
        y[:, indexes] = counts
        return y[0] if x.ndim == 1 else y

    return run
