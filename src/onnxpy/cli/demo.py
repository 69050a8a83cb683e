"""``onnxpy demo``: the first user journey, end to end, offline.

Train a RandomForest on iris with scikit-learn, convert it with skl2onnx, run it with onnxpy
exactly as one would run it with onnxruntime, and check that labels and probabilities agree
with scikit-learn's own.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass

import click
import numpy as np

__all__ = ["DemoResult", "run_demo", "command"]


@dataclass
class DemoResult:
    model_path: str
    rows: int
    labels_equal: int
    max_proba_diff: float
    accuracy: float
    session_seconds: float
    run_seconds: float

    @property
    def agrees(self) -> bool:
        return self.labels_equal == self.rows and self.max_proba_diff <= 1e-5


def run_demo(
    output_dir: str | None = None, n_estimators: int = 10, random_state: int = 42
) -> DemoResult:
    """Train, convert, run and compare; returns what was measured."""
    from onnxpy.cli import require

    require("sklearn", "demo", "the demo")
    require("skl2onnx", "demo", "the demo")
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

    import onnxpy as rt

    iris = load_iris()
    x_train, x_test, y_train, y_test = train_test_split(
        iris.data, iris.target, test_size=0.3, random_state=random_state
    )
    clf = RandomForestClassifier(n_estimators=n_estimators, random_state=random_state)
    clf.fit(x_train, y_train)
    onx = to_onnx(clf, x_train[:1].astype(np.float32))

    folder = output_dir or tempfile.mkdtemp(prefix="onnxpy-demo-")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "rf_iris.onnx")
    with open(path, "wb") as f:
        f.write(onx.SerializeToString())

    t0 = time.perf_counter()
    sess = rt.InferenceSession(path, providers=["CPUExecutionProvider"])
    t1 = time.perf_counter()
    input_name = sess.get_inputs()[0].name
    label_name = sess.get_outputs()[0].name
    proba_name = sess.get_outputs()[1].name
    labels, probas = sess.run([label_name, proba_name], {input_name: x_test.astype(np.float32)})
    t2 = time.perf_counter()

    expected_labels = clf.predict(x_test.astype(np.float32))
    expected_proba = clf.predict_proba(x_test.astype(np.float32))
    got_proba = np.array([[row[c] for c in clf.classes_] for row in probas], dtype=np.float64)
    return DemoResult(
        model_path=path,
        rows=len(x_test),
        labels_equal=int(np.sum(labels == expected_labels)),
        max_proba_diff=float(np.max(np.abs(got_proba - expected_proba))),
        accuracy=float(np.mean(labels == y_test)),
        session_seconds=t1 - t0,
        run_seconds=t2 - t1,
    )


@click.command("demo")
@click.option("--output-dir", default=None, help="Where to write rf_iris.onnx (default: temp).")
@click.option("--n-estimators", type=int, default=10, show_default=True)
def command(output_dir: str | None, n_estimators: int) -> int:
    """Train a RandomForest on iris, convert it with skl2onnx, run it with onnxpy, and check
    labels and probabilities against scikit-learn (offline)."""
    res = run_demo(output_dir, n_estimators)
    click.echo("onnxpy demo: RandomForestClassifier on iris -> skl2onnx -> onnxpy")
    click.echo(f"  model:                 {res.model_path}")
    click.echo(f"  session created in:    {res.session_seconds * 1e3:.1f} ms")
    click.echo(f"  predicted {res.rows} rows in:  {res.run_seconds * 1e3:.2f} ms")
    click.echo(f"  labels equal sklearn:  {res.labels_equal} / {res.rows}")
    click.echo(f"  max |proba diff|:      {res.max_proba_diff:.2e}")
    click.echo(f"  test accuracy:         {res.accuracy:.3f}")
    click.echo(
        "  result:                " + ("AGREES with scikit-learn" if res.agrees else "DISAGREES")
    )
    return 0 if res.agrees else 1
