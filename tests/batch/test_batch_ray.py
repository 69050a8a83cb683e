"""``onnxpy batch --ray`` on a real local Ray (2 CPUs, no dashboard): Ray Data reads the
100k-row Parquet file and a pool of actors runs the model; the output equals the local job's
and a direct session run, the same bad rows are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow", reason="onnxpy batch needs pyarrow (extra batch)")
pytest.importorskip("ray.data", reason="the Ray tests need the ray extra")
pytest.importorskip("skl2onnx", reason="the iris models are converted with skl2onnx")

import pyarrow.parquet as pq  # noqa: E402

from onnxpy.batch import run  # noqa: E402
from onnxpy.cli import main  # noqa: E402
from tests.batch.data import BAD_ROWS, ROWS, features, iris_models, write_parquet  # noqa: E402
from tests.batch.test_batch import check_output  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]


def test_ray_job_over_100k_rows_equals_the_local_job(ray_local, tmp_path, capsys):
    clf, tensor, _ = iris_models(tmp_path / "models")
    x = features()
    write_parquet(tmp_path / "flowers.parquet", x)  # 4 row groups: 4 blocks for the actors
    local, remote = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    refused = tmp_path / "refused.jsonl"
    assert main(["batch", str(tensor), "-i", str(tmp_path / "flowers.parquet"), "-o",
                 str(local)]) == 1  # fmt: skip
    args = ["-o", str(remote), "--ray", "--actors", "2", "--refused", str(refused)]
    assert main(["batch", str(tensor), "-i", str(tmp_path / "flowers.parquet"), *args]) == 1
    on_ray = pq.read_table(remote)
    assert on_ray.num_rows == ROWS - len(BAD_ROWS)
    check_output(on_ray, tensor, x)
    assert on_ray.equals(pq.read_table(local))
    rows = [json.loads(line)["row"] for line in refused.read_text().splitlines()]
    assert rows == sorted(BAD_ROWS)
    assert f"{len(BAD_ROWS)} refused" in capsys.readouterr().out


def test_a_ray_dataset_source_runs_on_ray(ray_local, tmp_path):
    import ray.data

    clf, tensor, _ = iris_models(tmp_path / "models")
    x = features(2_000, seed=1)
    items = pa.table({"id": np.arange(2_000),
                      "X": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 4)})  # fmt: skip
    dataset = ray.data.from_arrow(items).repartition(4)
    result = run(tensor, dataset, batch_size=256)
    assert result.refused == [] and result.rows == 2_000
    np.testing.assert_array_equal(result.table.column("id").to_numpy(), np.arange(2_000))
    np.testing.assert_array_equal(result.table.column("label").to_numpy(), clf.predict(x))
