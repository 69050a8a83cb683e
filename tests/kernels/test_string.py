"""String operators beyond the backend cases. Expectations are worked by hand."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T

import onnxpy
from tests.kernels import single_node


def run(op, inputs, outputs=1, **kw):
    """Run one node; outputs are strings of the inputs' largest rank unless told otherwise."""
    kw.setdefault("out_types", T.STRING)
    return single_node.run(op, inputs, 20, outputs, like_input=True, **kw)


def s(*values, shape=None):
    arr = np.array(values, dtype=object)
    return arr.reshape(shape) if shape is not None else arr


# -- StringConcat ----------------------------------------------------------------------------


def test_string_concat_scalar_broadcast():
    y = run("StringConcat", [np.array("pre-", dtype=object), s("a", "bc")])
    assert y.dtype == object and y.tolist() == ["pre-a", "pre-bc"]


def test_string_concat_two_scalars_stay_a_tensor():
    y = run("StringConcat", [np.array("a", dtype=object), np.array("é", dtype=object)])
    assert isinstance(y, np.ndarray) and y.shape == () and y.dtype == object
    assert y[()] == "aé"


# -- StringNormalizer ------------------------------------------------------------------------


def test_normalizer_case_insensitive_stopwords_then_lower():
    x = s("Hello", "THE", "World", "the")
    y = run("StringNormalizer", [x], stopwords=["the"], case_change_action="LOWER")
    assert y.tolist() == ["hello", "world"]


def test_normalizer_case_sensitive_keeps_other_cases():
    x = s("Hello", "THE", "World", "the")
    y = run("StringNormalizer", [x], stopwords=["the"], is_case_sensitive=1)
    assert y.tolist() == ["Hello", "THE", "World"]


def test_normalizer_all_dropped_from_row_gives_one_empty_string():
    y = run("StringNormalizer", [s("a", "A", shape=(1, 2))], stopwords=["a"])
    assert y.shape == (1, 1) and y[0, 0] == ""


def test_normalizer_rejects_multi_row_input():
    with pytest.raises(onnxpy.errors.OnnxpyError, match=r"\[1, C\]"):
        run("StringNormalizer", [s("a", "b", shape=(2, 1))])


# -- StringSplit -----------------------------------------------------------------------------


def test_string_split_multichar_delimiter_with_maxsplit():
    x = s("a--b--c", "--", "ab", "x--", shape=(2, 2))
    y, n = run(
        "StringSplit",
        [x],
        outputs=2,
        out_types=[T.STRING, T.INT64],
        out_rank=[3, 2],
        delimiter="--",
        maxsplit=1,
    )
    assert y.shape == (2, 2, 2)
    assert y.tolist() == [[["a", "b--c"], ["", ""]], [["ab", ""], ["x", ""]]]
    assert n.dtype == np.int64 and n.tolist() == [[2, 2], [1, 2]]


# -- RegexFullMatch --------------------------------------------------------------------------


def match(pattern, *values):
    return run("RegexFullMatch", [s(*values)], out_types=[T.BOOL], pattern=pattern).tolist()


def test_regex_posix_class():
    assert match(r"[[:digit:]]+-\d", "12-3", "12-", "a1-2") == [True, False, False]


def test_regex_quoted_literal():
    # \Q a.b \E is the literal "a.b"; the + repeats its last character.
    assert match(r"\Qa.b\E+", "a.bbb", "axb") == [True, False]


def test_regex_word_class_is_ascii_as_in_re2():
    assert match(r"\w+", "cafe_1", "café") == [True, False]


def test_regex_re2_named_group_and_end_of_text():
    assert match(r"(?<w>ab)+\z", "abab", "aba") == [True, False]


def test_regex_empty_tensor_keeps_shape():
    x = np.empty((2, 0), dtype=object)
    y = run("RegexFullMatch", [x], out_types=[T.BOOL], pattern="a")
    assert y.shape == (2, 0) and y.dtype == np.bool_


def test_regex_unicode_class_refused_at_creation():
    with pytest.raises(onnxpy.errors.NotImplemented):
        match(r"\pL+", "abc")


def test_regex_invalid_pattern_refused():
    with pytest.raises(onnxpy.errors.OnnxpyError, match="invalid pattern"):
        match(r"(ab", "ab")


# -- TfIdfVectorizer -------------------------------------------------------------------------

# Pool: unigrams "a", "b" and the bigram ("a", "b"); n-gram i goes to output ngram_indexes[i].
POOL = {
    "pool_strings": ["a", "b", "a", "b"],
    "ngram_counts": [0, 2],
    "ngram_indexes": [2, 0, 1],
    "weights": [0.5, 2.0, 3.0],
    "min_gram_length": 1,
    "max_gram_length": 2,
    "max_skip_count": 0,
}
# In a b a b c: "a" twice, "b" twice, "a b" twice (positions 0-1 and 2-3).
DOC = s("a", "b", "a", "b", "c")


def tfidf(x, **overrides):
    attrs = {**POOL, **overrides}
    return run("TfIdfVectorizer", [x], out_types=[T.FLOAT], **attrs)


def test_tfidf_tf_ignores_weights():
    y = tfidf(DOC, mode="TF")
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, [2.0, 2.0, 2.0])


def test_tfidf_idf_truncates_counts_then_weights():
    # Y[0] <- "b" (weight 2), Y[1] <- "a b" (weight 3), Y[2] <- "a" (weight 0.5).
    np.testing.assert_array_equal(tfidf(DOC, mode="IDF"), [2.0, 3.0, 0.5])


def test_tfidf_tfidf_scales_counts():
    np.testing.assert_array_equal(tfidf(DOC, mode="TFIDF"), [4.0, 6.0, 1.0])


def test_tfidf_skip_finds_spaced_bigram_in_each_row():
    # Row "a c b": "a b" only with one skipped token. Row "a b c": adjacent "a b".
    x = s("a", "c", "b", "a", "b", "c", shape=(2, 3))
    y0 = tfidf(x, mode="TF", min_gram_length=2)
    np.testing.assert_array_equal(y0, [[0, 0, 0], [0, 1, 0]])
    y1 = tfidf(x, mode="TF", min_gram_length=2, max_skip_count=1)
    np.testing.assert_array_equal(y1, [[0, 1, 0], [0, 1, 0]])


def test_tfidf_int_pool_unknown_tokens_ignored():
    # Pool unigrams 7, 9; the input's 8s and 100 are not in the pool.
    y = run(
        "TfIdfVectorizer",
        [np.array([7, 8, 9, 9, 100], np.int64)],
        out_types=[T.FLOAT],
        mode="TF",
        pool_int64s=[7, 9],
        ngram_counts=[0],
        ngram_indexes=[1, 0],
        min_gram_length=1,
        max_gram_length=1,
        max_skip_count=0,
    )
    np.testing.assert_array_equal(y, [2.0, 1.0])
