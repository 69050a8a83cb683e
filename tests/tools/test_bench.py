"""`onnxpy bench`: each runtime in a fresh process, a table, and a real PNG bar chart with one
bar per runtime and batch size (checked in the figure and in the picture's pixels)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from onnxpy.tools.bench import BenchReport, BenchRow
from onnxpy.tools.plot import plot_bench, runtime_label
from tests.tools.models import iris_forest


@pytest.fixture(scope="module")
def forest(tmp_path_factory):
    from onnxpy.convert.sklearn import convert_sklearn

    pkl, _ = iris_forest()
    path = tmp_path_factory.mktemp("bench") / "forest.onnx"
    convert_sklearn(pkl, path, trust_pickle=True, validate=False)
    return path, pkl


def _colour(index: int) -> tuple[int, int, int]:
    from matplotlib import colors

    return tuple(round(255 * c) for c in colors.to_rgb(f"C{index}"))


@pytest.mark.slow
def test_bench_four_runtimes_table_json_and_chart(cli, forest, tmp_path):
    path, pkl = forest
    runtimes = f"onnxpy,onnxruntime,reference,sklearn:{pkl}"
    png, js = tmp_path / "bench.png", tmp_path / "bench.json"
    res = cli("bench", path, "--runtimes", runtimes, "--batch", "1,16", "--seconds", "0.05",
              "--plot", png, "--json", js, "--trust-pickle", "--threads", "1")  # fmt: skip
    assert res.code == 0, res
    table = [ln.split() for ln in res.out.splitlines()[2:-1]]
    assert res.out.splitlines()[-1] == f"chart written to {png}"
    assert [(r[0], r[1]) for r in table] == [
        (rt, b)
        for rt in ["onnxpy", "onnxruntime", "reference", f"sklearn:{pkl}"]
        for b in "1 16".split()
    ]
    data = json.loads(js.read_text())
    rows = [BenchRow(**r) for r in data["rows"]]
    assert all(not r.error and r.runs >= 3 and 0 < r.median_ms <= r.p90_ms for r in rows)
    assert all(r.peak_mb > 10 and r.create_ms > 0 for r in rows)
    assert all(r.rows_per_s == pytest.approx(r.batch / (r.median_ms / 1e3)) for r in rows)
    # separate processes: the peak memory of each runtime is its own
    assert len({r.peak_mb for r in rows if r.batch == 1}) > 1
    # a real PNG, and the bars drawn: each runtime's colour is in the picture
    image = Image.open(png)
    assert image.format == "PNG" and image.size[0] > 300 and image.size[1] > 200
    pixels = {tuple(p) for p in np.asarray(image.convert("RGB")).reshape(-1, 3)}
    assert all(_colour(k) in pixels for k in range(4))
    # the figure: one bar per (runtime, batch), heights the medians, log scale
    report = BenchReport(data["model"], data["runtimes"], data["batches"], data["threads"], rows)
    fig = plot_bench(report)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    labels = ["onnxpy", "onnxruntime", "reference", "sklearn:iris_forest.pkl"]
    assert [c.get_label() for c in ax.containers] == labels
    bars = [(c.get_label(), p.get_height()) for c in ax.containers for p in c.patches]
    assert len(bars) == 8
    expected = [
        (runtime_label(r.runtime), r.median_ms)
        for rt in report.runtimes
        for r in rows
        if r.runtime == rt
    ]
    assert [b[0] for b in bars] == [e[0] for e in expected]
    np.testing.assert_allclose([b[1] for b in bars], [e[1] for e in expected])


def test_bench_sklearn_runtime_needs_trust(cli, forest):
    path, pkl = forest
    res = cli("bench", path, "--runtimes", f"onnxpy,sklearn:{pkl}")
    assert res.code == 3 and "--trust-pickle" in res.err


def test_bench_failed_runtime_reports_its_error(cli, tmp_path, forest):
    path, _ = forest
    res = cli("bench", path, "--runtimes", "onnxpy,reference", "--batch", "0")
    assert res.code == 3 and "positive" in res.err
    res = cli("bench", path, "--runtimes", "onnxpy,tensorflow")
    assert res.code == 3 and "tensorflow" in res.err


def test_plot_skips_failed_rows():
    rows = [BenchRow("a", 1, median_ms=1.0), BenchRow("b", 1, error="boom"),
            BenchRow("a", 8, median_ms=4.0), BenchRow("b", 8, median_ms=2.0)]  # fmt: skip
    fig = plot_bench(BenchReport("m.onnx", ["a", "b"], [1, 8], 0, rows))
    heights = [[p.get_height() for p in c.patches] for c in fig.axes[0].containers]
    assert heights == [[1.0, 4.0], [2.0]]
