"""onnxpy.batch and ``onnxpy batch`` on one machine: outputs equal a direct session run, bad rows
reported by index and left out, every input form (Parquet, folder, CSV, .npy, pandas, Arrow)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow", reason="onnxpy batch needs pyarrow (extra batch)")
pytest.importorskip("skl2onnx", reason="the iris models are converted with skl2onnx")

import pyarrow.parquet as pq  # noqa: E402

import onnxpy  # noqa: E402
from onnxpy.batch import BatchPredictor, actor_plan, run  # noqa: E402
from onnxpy.cli import main  # noqa: E402
from onnxpy.errors import InvalidArgument  # noqa: E402
from tests.batch.data import BAD_ROWS, ROWS, features, iris_models, write_parquet  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("batch")
    clf, tensor, zipmap = iris_models(folder)
    x = features()
    write_parquet(folder / "flowers.parquet", x)
    return folder, clf, tensor, zipmap, x


def expected_outputs(model, x: np.ndarray) -> list[np.ndarray]:
    """The direct session run the batch job must equal."""
    return onnxpy.InferenceSession(str(model)).run(None, {"X": x})


def check_output(table, model, x, bad=BAD_ROWS) -> None:
    good = np.array([r for r in range(len(x)) if r not in bad])
    label, proba = expected_outputs(model, x[good])
    np.testing.assert_array_equal(table.column("id").to_numpy(), good)
    np.testing.assert_array_equal(table.column("label").to_numpy(), label)
    got = table.column("probabilities").combine_chunks().flatten().to_numpy()
    np.testing.assert_array_equal(got.reshape(-1, 3), proba)


def test_cli_over_100k_rows_equals_a_session_run_and_reports_bad_rows(data, tmp_path, capsys):
    folder, _, tensor, _, x = data
    out, refused = tmp_path / "out.parquet", tmp_path / "refused.jsonl"
    code = main(["batch", str(tensor), "-i", str(folder / "flowers.parquet"), "-o", str(out),
                 "--refused", str(refused)])  # fmt: skip
    assert code == 1  # rows were refused; the rest is written
    table = pq.read_table(out)
    assert table.column_names == ["id", "label", "probabilities"]
    assert table.num_rows == ROWS - len(BAD_ROWS)
    check_output(table, tensor, x)
    lines = [json.loads(line) for line in refused.read_text().splitlines()]
    assert [r["row"] for r in lines] == sorted(BAD_ROWS)
    reasons = {r["row"]: r["reason"] for r in lines}
    assert "null list" in reasons[7] and "3 values" in reasons[4_095]
    assert "null value" in reasons[4_096] and "5 values" in reasons[55_555]
    captured = capsys.readouterr()
    assert f"{ROWS:,} rows" in captured.out and f"{len(BAD_ROWS)} refused" in captured.out
    assert "row 7:" in captured.err and "needs 4" in captured.err


@pytest.mark.slow
def test_the_command_on_a_terminal_shows_a_progress_bar_then_the_summary(data, tmp_path):
    """A real ``onnxpy batch`` process with stderr on a pseudo-terminal: the bar is drawn there
    (rich, cleared at the end), the summary goes to stdout, which here is a pipe."""
    import os
    import pty
    import select
    import subprocess
    import sys

    pytest.importorskip("rich", reason="the progress bar is rich's (extra batch)")
    folder, _, tensor, _, x = data
    out = tmp_path / "out.parquet"
    main_fd, term_fd = pty.openpty()
    env = {**os.environ, "COLUMNS": "100", "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    command = [sys.executable, "-m", "onnxpy", "batch", str(tensor), "-i",
               str(folder / "flowers.parquet"), "-o", str(out), "--keep", "id"]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=term_fd, env=env)
    os.close(term_fd)
    drawn = b""
    while True:  # read the terminal while the command runs (its buffer is small)
        ready, _, _ = select.select([main_fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(main_fd, 65536)
            except OSError:  # EIO: the command exited, closing the terminal's last handle
                chunk = b""
            if not chunk:
                break
            drawn += chunk
        elif proc.poll() is not None:
            break
    os.close(main_fd)
    summary = proc.stdout.read().decode()
    assert proc.wait(60) == 1  # some rows refused, the others written
    terminal = drawn.decode(errors="replace")
    assert "rows" in terminal and "100%" in terminal, terminal[-2000:]
    assert "row 7:" in terminal  # the refused rows are listed on stderr too
    good = ROWS - len(BAD_ROWS)
    assert f"{ROWS:,} rows in " in summary and "rows/s" in summary, summary
    assert f"{good:,} written -> {out}" in summary and f"{len(BAD_ROWS)} refused" in summary
    assert "\x1b" not in summary  # nothing of the bar in the piped results
    assert pq.read_table(out).column_names == ["id", "label", "probabilities"]


def test_all_good_rows_exit_zero_and_zipmap_becomes_a_map_column(data, tmp_path):
    folder, clf, _, zipmap, x = data
    table = pa.table({"id": np.arange(150), "X": pa.FixedSizeListArray.from_arrays(
        pa.array(x[:150].ravel()), 4)})  # fmt: skip
    pq.write_table(table, tmp_path / "ok.parquet")
    out = tmp_path / "zip.parquet"
    assert main(["batch", str(zipmap), "-i", str(tmp_path / "ok.parquet"), "-o", str(out),
                 "--batch-size", "64"]) == 0  # fmt: skip
    result = pq.read_table(out)
    np.testing.assert_array_equal(result.column("output_label").to_numpy(), clf.predict(x[:150]))
    maps = result.column("output_probability").to_pylist()
    got = np.array([[dict(m)[c] for c in range(3)] for m in maps])
    np.testing.assert_allclose(got, clf.predict_proba(x[:150]), atol=1e-6)


def test_scalar_columns_stack_and_bad_values_in_a_csv_are_refused(data, tmp_path):
    _, clf, tensor, _, x = data
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    lines = ["id," + ",".join(names)]
    for i, row in enumerate(x[:300]):
        cells = [repr(float(v)) for v in row]
        if i == 11:
            cells[2] = "n/a"  # a value that does not convert: the wrong type
        if i == 200:
            cells[0] = ""  # empty: null
        lines.append(f"{i}," + ",".join(cells))
    (tmp_path / "flowers.csv").write_text("\n".join(lines) + "\n")
    result = run(tensor, tmp_path / "flowers.csv", columns={"X": names}, batch_size=128)
    assert [r for r, _ in result.refused] == [11, 200]
    assert "petal_length" in result.refused[0][1]
    check_output(result.table, tensor, x[:300], bad={11: "", 200: ""})
    assert result.rows == 300 and result.written == 298


def test_npy_folder_pandas_and_arrow_sources(data, tmp_path):
    folder, _, tensor, _, x = data
    np.save(tmp_path / "x.npy", x[:1000])
    from_npy = run(tensor, tmp_path / "x.npy", batch_size=300)  # one input, one column
    label, proba = expected_outputs(tensor, x[:1000])
    np.testing.assert_array_equal(from_npy.table.column("label").to_numpy(), label)
    assert from_npy.table.column_names == ["label", "probabilities"]

    shards = tmp_path / "shards"
    shards.mkdir()
    for i in range(3):  # read in path order: part-0, part-1, part-2
        part = pa.table({"id": np.arange(i * 100, (i + 1) * 100),
                         "X": pa.FixedSizeListArray.from_arrays(
                             pa.array(x[i * 100 : (i + 1) * 100].ravel()), 4)})  # fmt: skip
        pq.write_table(part, shards / f"part-{i}.parquet")
    from_folder = run(tensor, shards, outputs=["label"], keep=[])
    assert from_folder.table.column_names == ["label"]
    np.testing.assert_array_equal(from_folder.table.column("label").to_numpy(), label[:300])

    import pandas as pd

    frame = pd.DataFrame(
        {"key": [f"k{i}" for i in range(50)], "X": list(x[:50].astype(np.float64))}
    )
    from_pandas = run(tensor, frame)
    assert from_pandas.table.column("key").to_pylist() == [f"k{i}" for i in range(50)]
    np.testing.assert_array_equal(from_pandas.table.column("label").to_numpy(), label[:50])


def test_a_row_the_model_fails_on_is_refused_alone():
    from onnx import TensorProto, helper, numpy_helper

    table = numpy_helper.from_array(np.arange(20, dtype=np.float32).reshape(10, 2), "T")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["T", "i"], ["y"], axis=0)], "g",
        [helper.make_tensor_value_info("i", TensorProto.INT64, ["n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])], [table],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    index = np.array([1, 2, 30, 4, 5, 6, 7, 99], dtype=np.int64)  # 30, 99: out of range
    result = run(model, pa.table({"i": index}), batch_size=8)
    assert [r for r, _ in result.refused] == [2, 7]
    assert all("failed on this row" in why for _, why in result.refused)
    got = result.table.column("y").combine_chunks().flatten().to_numpy().reshape(-1, 2)
    good = index[[0, 1, 3, 4, 5, 6]]
    np.testing.assert_array_equal(got, np.stack([2 * good, 2 * good + 1], axis=1))


def test_mistakes_in_the_job_are_refused_with_their_reason(data, tmp_path):
    folder, _, tensor, _, x = data
    table = pa.table({"id": [1, 2], "Y": [[1.0, 2.0, 3.0, 4.0]] * 2})
    with pytest.raises(InvalidArgument, match="--columns X="):
        run(tensor, table)
    with pytest.raises(InvalidArgument, match="not inputs of the model"):
        run(tensor, table, columns={"Z": "Y"})
    with pytest.raises(InvalidArgument, match="--outputs names"):
        run(tensor, table, columns={"X": "Y"}, outputs=["nope"])
    with pytest.raises(InvalidArgument, match="one value per row"):
        run(tensor, table, columns={"X": "id"})
    out = tmp_path / "never.parquet"
    assert main(["batch", str(tensor), "-i", str(tmp_path / "none.parquet"), "-o", str(out)]) == 3
    assert main(["batch", str(tensor), "-i", str(folder / "flowers.parquet"), "-o", str(out),
                 "--actors", "2"]) == 2  # fmt: skip
    assert not out.exists() and not list(tmp_path.glob("never.parquet.partial*"))


def test_predictor_keeps_row_count_and_marks_refused_rows(data):
    _, _, tensor, _, x = data
    batch = pa.table({"X": pa.array([list(map(float, x[0])), None, list(map(float, x[2]))])})
    out = BatchPredictor(str(tensor))(batch)
    assert out.num_rows == 3
    assert out.column("label").null_count == 1 and out.column("label")[1].as_py() is None
    assert out.column("__onnxpy_error__").to_pylist()[0] is None
    # strings that parse are fed; the row whose value does not is refused alone
    texts = pa.table(
        {"X": [[str(v) for v in x[0]], ["5.1", "abc", "1.4", "0.2"], [str(v) for v in x[2]]]}
    )
    out = BatchPredictor(str(tensor))(texts)
    errors = out.column("__onnxpy_error__").to_pylist()
    assert errors[0] is None and errors[2] is None and "column 'X'" in errors[1]
    label, _ = expected_outputs(tensor, x[[0, 2]])
    assert out.column("label").to_pylist() == [label[0], None, label[1]]


@pytest.mark.parametrize(
    ("cpus", "actors", "plan"),
    [(2, None, (1, 1.0)), (2, 2, (2, 0.5)), (16, None, (14, 1.0)), (1, None, (1, 0.25)),
     (8, 2, (2, 1.0))],
)  # fmt: skip
def test_actor_plan_leaves_a_cpu_to_the_readers(cpus, actors, plan):
    assert actor_plan(cpus, actors) == plan
    count, per_actor = plan
    assert cpus - count * per_actor >= min(1.0, cpus * 0.75)
