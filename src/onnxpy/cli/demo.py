"""``onnxpy demo``: the first user journey, end to end, offline.

Train a RandomForest on iris with scikit-learn, convert it with skl2onnx, run it with onnxpy
exactly as one would run it with onnxruntime, serve it with ``onnxpy serve`` and query the server
over the KServe v2 protocol, and check that labels and probabilities agree with scikit-learn's
own at every step.
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
    served_labels_equal: int | None = None  # None: not served (serve=False)
    server_address: str = ""
    server_start_seconds: float = 0.0
    query_seconds: float = 0.0

    @property
    def agrees(self) -> bool:
        served = self.served_labels_equal is None or self.served_labels_equal == self.rows
        return self.labels_equal == self.rows and self.max_proba_diff <= 1e-5 and served


def run_demo(
    output_dir: str | None = None,
    n_estimators: int = 10,
    random_state: int = 42,
    serve: bool = True,
) -> DemoResult:
    """Train, convert, run, serve and query, comparing with scikit-learn; returns what was
    measured. ``serve=False`` stops after running the model in this process."""
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
    result = DemoResult(
        model_path=path,
        rows=len(x_test),
        labels_equal=int(np.sum(labels == expected_labels)),
        max_proba_diff=float(np.max(np.abs(got_proba - expected_proba))),
        accuracy=float(np.mean(labels == y_test)),
        session_seconds=t1 - t0,
        run_seconds=t2 - t1,
    )
    if serve:
        require("starlette", "serve", "serving the model")
        from onnxpy.cli.demo_serve import serve_and_query

        served = serve_and_query(path, "rf_iris", input_name, x_test.astype(np.float32), label_name)
        result.served_labels_equal = int(np.sum(served.labels.ravel() == expected_labels))
        result.server_address = served.address
        result.server_start_seconds = served.start_seconds
        result.query_seconds = served.query_seconds
    return result


@click.command("demo")
@click.option("--output-dir", default=None, help="Where to write rf_iris.onnx (default: temp).")
@click.option("--n-estimators", type=int, default=10, show_default=True)
@click.option("--no-serve", is_flag=True, help="Stop after running the model in this process.")
def command(output_dir: str | None, n_estimators: int, no_serve: bool) -> int:
    """Train a RandomForest on iris, convert it with skl2onnx, run it with onnxpy, serve it
    with `onnxpy serve` and query the server, checking labels and probabilities against
    scikit-learn at every step (offline: the server listens on loopback only).

    \b
    Examples:
      onnxpy demo
      onnxpy demo --output-dir ./demo --no-serve
    """
    res = run_demo(output_dir, n_estimators, serve=not no_serve)
    click.echo("onnxpy demo: RandomForestClassifier on iris -> skl2onnx -> onnxpy -> onnxpy serve")
    click.echo(f"  model:                 {res.model_path}")
    click.echo(f"  session created in:    {res.session_seconds * 1e3:.1f} ms")
    click.echo(f"  predicted {res.rows} rows in:  {res.run_seconds * 1e3:.2f} ms")
    click.echo(f"  labels equal sklearn:  {res.labels_equal} / {res.rows}")
    click.echo(f"  max |proba diff|:      {res.max_proba_diff:.2e}")
    click.echo(f"  test accuracy:         {res.accuracy:.3f}")
    if res.served_labels_equal is not None:
        click.echo(f"  served at:             {res.server_address} (ready in "
                   f"{res.server_start_seconds:.1f} s)")  # fmt: skip
        click.echo(
            f"  queried {res.rows} rows in:    {res.query_seconds * 1e3:.1f} ms (KServe v2 JSON)"
        )
        click.echo(f"  served labels equal:   {res.served_labels_equal} / {res.rows}")
    click.echo(
        "  result:                " + ("AGREES with scikit-learn" if res.agrees else "DISAGREES")
    )
    return 0 if res.agrees else 1
