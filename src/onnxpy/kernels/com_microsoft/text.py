"""The com.microsoft Tokenizer, as skl2onnx emits it for CountVectorizer/TfidfVectorizer.

Each string of X ([C] or [N, C]) becomes a row of tokens along a new last axis, padded with
``pad_value`` to the longest row. Two modes:

* ``separators``: the RE2 patterns are applied one after another, each splitting every piece
  the previous ones left; empty pieces are dropped. ``[""]`` splits into characters. Where a
  separator matches the empty string, the next character is dropped with it (onnxruntime's
  behaviour: ``a*`` leaves no token at all).
* ``tokenexp``: the tokens are the successive non-overlapping matches of the pattern. ``"."``
  splits into characters (newlines included).

Patterns are RE2: matching is leftmost-*longest* (``a|ab`` on ``ab`` gives ``ab``) and
``\\w \\d \\s \\b`` are ASCII-only. onnxpy compiles them with Python's ``re`` (``re.ASCII``,
after the translation of :func:`onnxpy.kernels.ai_onnx.string.re2_to_python`) and emulates the
longest match (see :class:`_Pattern`): exactly and at Python's speed for sequences of
one-character items (``[a-zA-Z0-9_]+``, ``\\b\\w+\\b``) and top-level alternations of them;
patterns with alternatives or optional groups nested in groups cost O(length) regex calls per
token.

Tokens shorter than ``mincharnum`` characters are dropped. With ``mark`` every row is framed
by ``\\x02`` ... ``\\x03`` (an empty one too), unless no string has any token: then, as without
``mark``, the last axis has length 0. An empty input ([0] or [N, 0]) gives an output of the
input's shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from onnxpy import errors
from onnxpy.kernels.ai_onnx.string import re2_to_python
from onnxpy.kernels.registry import NodeInfo, register

_START, _END = "\x02", "\x03"
_GLOBAL_FLAGS = re.compile(r"\(\?[aiLmsux]+\)")

# A zero-width anchor, or a one-character atom (class, escape, plain character) with an
# optional greedy quantifier. For a concatenation of such items, the first match Python's
# backtracking finds is also the longest one at its start.
_ITEM = (
    r"(?:\\[bBAZ]|[\^$]"
    r"|(?:\[(?:\\.|[^\]\\])+\]|\\.|[^\\\[\](){}|?*+^$])(?:[?*+]|\{\d+(?:,\d*)?\})?(?![?+]))"
)
_SEQUENCE = re.compile(f"{_ITEM}*")
# Assertions that look at the character after a match.
_AT_END = re.compile(r"\\[bBZ]|\$")


def _top_level_alternatives(text: str) -> list[str]:
    """``text`` split at the ``|`` outside groups and classes."""
    parts, depth, in_class, last, i = [], 0, False, 0, 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if text[i + 1 : i + 2] == "]":
                i += 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            parts.append(text[last:i])
            last = i + 1
        i += 1
    parts.append(text[last:])
    return parts


class _Pattern:
    """An RE2 pattern with leftmost-longest, non-empty, non-overlapping matching.

    The leftmost start is Python's search. The longest end there is Python's own match for a
    sequence of one-character items, the longest of the alternatives' matches for a top-level
    alternation of such sequences, and otherwise found by trying every end from the longest
    down (slow on long strings, needed only for nested alternatives or optional groups).
    """

    def __init__(self, pattern: str, what: str) -> None:
        if pattern.startswith("(?u)"):
            raise errors.NotImplemented(f"Tokenizer: RE2 rejects the flag (?u) in {what}")
        try:
            self.text = re2_to_python(pattern)
            self.rx = re.compile(self.text, re.ASCII)
        except re.error as e:
            raise ValueError(f"Tokenizer: invalid {what} {pattern!r}: {e}") from e
        flags = _GLOBAL_FLAGS.match(self.text)
        head = self.head = flags.group() if flags else ""
        body = self.body = self.text[len(head) :]
        alternatives = _top_level_alternatives(body)
        self.alternatives: list[re.Pattern[str]] | None = None
        self.exhaustive = not all(_SEQUENCE.fullmatch(a) for a in alternatives)
        if not self.exhaustive and len(alternatives) > 1:
            self.alternatives = [re.compile(head + a, re.ASCII) for a in alternatives]
        self.lookahead = "(?=" in body or "(?!" in body
        self.context = _AT_END.search(body) is not None
        self.one_after = re.compile(f"{head}(?:{body})(?=[\\s\\S]\\Z)", re.ASCII)
        self._endings: dict[int, re.Pattern[str]] = {}

    def _longest_end(self, s: str, start: int, end: int) -> int:
        if self.alternatives is not None:
            ends = (m.end() for a in self.alternatives if (m := a.match(s, start)))
            return max(ends, default=end)
        n = len(s)
        for e in range(n, end, -1):
            if self.lookahead:
                hit = self._ending(n - e).match(s, start)
            elif e < n and self.context:
                # \b, \B or $ at e must see the character after e: keep one in view.
                hit = self.one_after.match(s, start, e + 1)
            else:
                hit = self.rx.fullmatch(s, start, e)
            if hit:
                return e
        return end

    def _ending(self, remaining: int) -> re.Pattern[str]:
        """The pattern matching only where exactly ``remaining`` characters follow."""
        rx = self._endings.get(remaining)
        if rx is None:
            tail = f"(?=[\\s\\S]{{{remaining}}}\\Z)"
            rx = self._endings[remaining] = re.compile(
                f"{self.head}(?:{self.body}){tail}", re.ASCII
            )
        return rx

    def spans(self, s: str) -> Iterator[tuple[int, int]]:
        """Successive leftmost-longest matches; after an empty one the search moves one
        character on (the character is consumed, which matters to separators)."""
        pos = 0
        while pos <= len(s):
            m = self.rx.search(s, pos)
            if m is None:
                return
            start, end = m.span()
            if self.alternatives is not None or self.exhaustive:
                end = self._longest_end(s, start, end)
            yield start, end
            pos = end if end > start else start + 1


def _split(pieces: list[str], sep: _Pattern) -> list[str]:
    """Each piece cut at the separator's matches; an empty match also drops one character."""
    out: list[str] = []
    for piece in pieces:
        last = 0
        for start, end in sep.spans(piece):
            out.append(piece[last:start])
            last = end if end > start else start + 1
        if last <= len(piece):
            out.append(piece[last:])
    return [p for p in out if p]


def _tokenizer_fn(separators: list[str] | None, tokenexp: str | None) -> Callable[[str], list[str]]:
    """The per-string tokenizing function the attributes select."""
    if separators:
        if list(separators) == [""]:
            return list
        compiled = [_Pattern(p, "separator") for p in separators]

        def by_separators(s: str) -> list[str]:
            pieces = [s] if s else []
            for sep in compiled:
                pieces = _split(pieces, sep)
            return pieces

        return by_separators
    if tokenexp == ".":
        return list
    token = _Pattern(tokenexp or "", "tokenexp")
    return lambda s: [s[a:b] for a, b in token.spans(s) if b > a]


def _rows_to_array(rows: list[list[str]], lead: tuple[int, ...], pad: str) -> np.ndarray:
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), width), pad, dtype=object)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out.reshape(lead + (width,))


@register("Tokenizer", since=1, domain="com.microsoft", factory=True)
def tokenizer(
    info: NodeInfo,
    *,
    mark: int | None = None,
    mincharnum: int | None = None,
    pad_value: str | None = None,
    separators: list[str] | None = None,
    tokenexp: str | None = None,
) -> Callable[[Any], np.ndarray]:
    """Compile the patterns once; each run tokenizes every string of X."""
    if mark is None or mincharnum is None or pad_value is None:
        raise ValueError("Tokenizer needs the mark, mincharnum and pad_value attributes")
    if int(mincharnum) <= 0:
        raise ValueError(f"Tokenizer: mincharnum must be positive, got {mincharnum}")
    if not separators and not tokenexp:
        raise ValueError("Tokenizer needs either separators or a non-empty tokenexp")
    split = _tokenizer_fn(separators, tokenexp)
    min_chars = int(mincharnum)

    def run(x) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype.kind not in "OU":
            raise TypeError(f"Tokenizer: expected a string tensor, got {x.dtype}")
        if x.ndim not in (1, 2):
            raise ValueError(f"Tokenizer: input must be [C] or [N, C], got rank {x.ndim}")
        if x.size == 0:
            return np.empty(x.shape, dtype=object)
        rows = [[t for t in split(str(s)) if len(t) >= min_chars] for s in x.reshape(-1)]
        if mark and any(rows):
            rows = [[_START, *r, _END] for r in rows]
        return _rows_to_array(rows, x.shape, pad_value)

    return run
