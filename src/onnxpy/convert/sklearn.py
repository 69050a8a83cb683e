"""scikit-learn -> ONNX through skl2onnx, from an estimator or a joblib/pickle file.

Unpickling runs arbitrary code from the file, so loading one needs ``trust_pickle=True``
(``--trust-pickle``): say so only for files you made or trust. Classifiers are converted with
ZipMap off by default: the probabilities come out as one [batch, classes] tensor that every
runtime returns alike (``zipmap=True`` keeps the list of {class: probability} dicts).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from onnxpy.convert._common import Conversion, name_batch_axis, need, rename_values, save
from onnxpy.errors import InvalidArgument

__all__ = ["load_estimator", "convert_sklearn", "sklearn_runner"]


def load_estimator(path: str | os.PathLike, *, trust_pickle: bool = False) -> Any:
    """Unpickle a fitted estimator (joblib or pickle format) from a file you trust."""
    path = os.fspath(path)
    if not trust_pickle:
        raise InvalidArgument(
            f"{path}: loading a pickle runs any code it contains; pass --trust-pickle "
            "(trust_pickle=True) only for a file you made or trust"
        )
    if not os.path.isfile(path):
        raise InvalidArgument(f"{path}: no such file")
    need("sklearn")
    import joblib  # scikit-learn depends on it; it also reads plain pickles

    try:
        return joblib.load(path)
    except Exception as e:  # noqa: BLE001 - unpickling raises anything
        raise InvalidArgument(f"{path}: not a joblib/pickle file ({type(e).__name__}: {e})") from e


def _n_features(est: Any) -> int:
    n = getattr(est, "n_features_in_", None)
    if n is None:
        raise InvalidArgument(
            f"{type(est).__name__} has no n_features_in_: is it fitted? Give n_features."
        )
    return int(n)


def convert_sklearn(
    estimator: Any,
    output: str | os.PathLike,
    *,
    trust_pickle: bool = False,
    input_name: str = "X",
    output_names: Sequence[str] = (),
    n_features: int | None = None,
    zipmap: bool = False,
    opset: int | None = None,
    validate: bool = True,
    inputs: Sequence[str] = (),
    batch: int = 16,
    rtol: float = 1e-5,
    atol: float = 1e-5,
) -> Conversion:
    """Convert a fitted estimator (or the path of its pickle) to ONNX at ``output``.

    The input is float32 [batch, n_features] named ``input_name``; ``output_names`` renames
    skl2onnx's outputs (label, probabilities) in order. Validated with
    :func:`onnxpy.tools.validate.validate_model` unless ``validate`` is False.
    """
    skl2onnx = need("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType

    if isinstance(estimator, (str, os.PathLike)):
        estimator = load_estimator(estimator, trust_pickle=trust_pickle)
    n = n_features or _n_features(estimator)
    options = None
    if hasattr(estimator, "predict_proba") or hasattr(estimator, "classes_"):
        options = {id(estimator): {"zipmap": bool(zipmap)}}
    target = {"": opset} if opset else None
    try:
        model = skl2onnx.convert_sklearn(
            estimator,
            initial_types=[(input_name, FloatTensorType([None, n]))],
            options=options,
            target_opset=target,
        )
    except Exception as e:  # noqa: BLE001 - skl2onnx raises many classes for unsupported models
        raise InvalidArgument(
            f"skl2onnx cannot convert {type(estimator).__name__}: {type(e).__name__}: {e}"
        ) from e
    current = [o.name for o in model.graph.output]
    if output_names:
        if len(output_names) > len(current):
            raise InvalidArgument(f"--output-names: the model has {len(current)} outputs {current}")
        rename_values(model, dict(zip(current, output_names)))
    name_batch_axis(model)
    path = save(model, output)
    result = Conversion(path, model)
    if validate:
        from onnxpy.tools.validate import validate_model as run_validation

        result.validation = run_validation(
            estimator, path, inputs=inputs, batch=batch, rtol=rtol, atol=atol
        )
    return result


def sklearn_runner(estimator: Any, output_names: Sequence[str]) -> Callable[[dict], dict]:
    """``run(feeds) -> {onnx output name: expected value}`` from the estimator itself.

    Classifiers: (label, probabilities) from ``predict`` and ``predict_proba``; regressors and
    transformers: ``predict`` or ``transform`` (as a [batch, k] float array).
    """

    def run(feeds: dict) -> dict:
        x = next(iter(feeds.values()))
        if hasattr(estimator, "predict_proba") and len(output_names) >= 2:
            return {
                output_names[0]: estimator.predict(x),
                output_names[1]: estimator.predict_proba(x),
            }
        if hasattr(estimator, "predict"):
            y = np.asarray(estimator.predict(x))
            if y.ndim == 1 and len(output_names) == 1:
                y = y.reshape(-1, 1)
            return {output_names[0]: y}
        return {output_names[0]: np.asarray(estimator.transform(x))}

    return run
