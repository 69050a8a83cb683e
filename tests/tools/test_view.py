"""`onnxpy view` without a browser: the page is self-contained, --svg shares its layout,
--profile puts measured times on nodes, --diff marks changes, Netron serves on localhost."""

from __future__ import annotations

import json
import re
import urllib.request
import xml.etree.ElementTree as ET

import onnx
import pytest

from tests.tools.models import wide_model

SVG_NS = "{http://www.w3.org/2000/svg}"


def page_data(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="onnxpy-data">(.*?)</script>', html, re.S)
    return json.loads(m.group(1))


def boxes_in_html(html: str) -> dict[str, tuple[str, ...]]:
    found = re.findall(r'<g class="[^"]*" id="n\d+" data-id="\d+" data-name="([^"]*)">'
                       r'<title>[^<]*</title><rect ([^/]*)/>', html)  # fmt: skip
    return {
        name: tuple(re.findall(r'\b(?:x|y|width|height)="([\d.]+)"', rect)) for name, rect in found
    }


def test_html_is_self_contained_with_every_node(cli, cnn_path, tmp_path):
    out = tmp_path / "cnn.html"
    res = cli("view", cnn_path, "--html", out, "--no-browser")
    assert res.code == 0 and f"wrote {out} (10 nodes)" in res.out, res
    html = out.read_text()
    # nothing to fetch: no external scripts, styles, images or URLs but the SVG namespace
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", html)
    assert set(re.findall(r"https?://[^\s\"'<>)]+", html)) <= {"http://www.w3.org/2000/svg"}
    data = page_data(html)
    names = [d["name"] for d in data["details"]]
    assert names == ["image", *[n.name for n in onnx.load(cnn_path).graph.node], "logits"]
    conv1 = data["details"][1]
    assert conv1["attributes"]["kernel_shape"] == "[3, 3]"
    assert conv1["inputs"][1] == {"name": "conv1.w", "type": "float[8,3,3,3]",
                                  "initializer": "float32[8, 3, 3, 3], 864 bytes"}  # fmt: skip
    assert conv1["outputs"][0]["type"] == "float[batch,8,16,16]"
    assert "float[batch,8,16,16]" in html  # edge label


def test_svg_shares_the_page_layout(cli, cnn_path, tmp_path):
    assert cli("view", cnn_path, "--html", tmp_path / "p.html", "--svg", tmp_path / "p.svg",
               "--no-browser").code == 0  # fmt: skip
    root = ET.parse(tmp_path / "p.svg").getroot()
    groups = [g for g in root.iter(f"{SVG_NS}g") if "node" in g.get("class", "").split()]
    svg_boxes = {}
    for g in groups:
        rect = g.find(f"{SVG_NS}rect")
        svg_boxes[g.get("data-name")] = tuple(rect.get(k) for k in ("x", "y", "width", "height"))
    assert len(svg_boxes) == 12
    assert svg_boxes == boxes_in_html((tmp_path / "p.html").read_text())
    ys = [float(svg_boxes[n][1]) for n in ("image", "conv1", "bn1", "relu1", "pool1", "logits")]
    assert ys == sorted(ys) and len(set(ys)) == len(ys)  # top to bottom, one layer each


def test_profile_puts_measured_times_on_nodes(cli, cnn_path, tmp_path):
    out = tmp_path / "prof.html"
    assert cli("view", cnn_path, "--html", out, "--profile", "--batch", "4",
               "--no-browser").code == 0  # fmt: skip
    html = out.read_text()
    details = page_data(html)["details"]
    ops = [d for d in details if d["kind"] == "op"]
    assert all(d["time_ms"] > 0 for d in ops)
    slowest = max(ops, key=lambda d: d["time_ms"])
    # the slowest node is drawn in the hottest colour, with its time as text
    m = re.search(rf'data-name="{re.escape(slowest["name"])}">.*?style="fill:(#[0-9a-f]+)"', html)
    assert m and m.group(1) == "#bd0026"
    assert f"{slowest['time_ms']:.3f} ms" in html


def test_trace_file_from_onnxruntime(cli, cnn_path, tmp_path):
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.enable_profiling = True  # unoptimized, so that the file's nodes are the ones timed
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.profile_file_prefix = str(tmp_path / "ort")
    sess = ort.InferenceSession(str(cnn_path), so, providers=["CPUExecutionProvider"])
    for _ in range(3):
        sess.run(None, {"image": np.zeros((2, 3, 16, 16), np.float32)})
    trace = sess.end_profiling()
    out = tmp_path / "ort.html"
    assert cli("view", cnn_path, "--html", out, "--trace", trace, "--no-browser").code == 0
    timed = {d["name"] for d in page_data(out.read_text())["details"] if "time_ms" in d}
    assert {"conv1", "conv2", "fc"} <= timed


def test_diff_marks_fused_nodes(cli, cnn_path, tmp_path):
    opt = tmp_path / "opt.onnx"
    assert cli("optimize", cnn_path, "-o", opt, "--level", "extended").code == 0
    out = tmp_path / "diff.html"
    res = cli("view", opt, "--diff", cnn_path, "--html", out, "--no-browser")
    assert res.code == 0 and "(6 nodes)" in res.out, res
    details = page_data(out.read_text())["details"]
    status = {d["name"]: d.get("status") for d in details if d["kind"] == "op"}
    # Conv + BatchNormalization + Relu -> one FusedConv per block
    assert status == {
        **{n: "removed" for n in ("conv1", "bn1", "relu1", "conv2", "bn2", "relu2")},
        "conv1_fused": "added", "conv2_fused": "added",
        **{n: "same" for n in ("pool1", "gap", "flatten", "fc")},
    }  # fmt: skip
    assert 'class="node k-op s-removed"' in out.read_text()


def test_diff_marks_changed_attributes(cli, cnn_path, tmp_path):
    model = onnx.load(cnn_path)
    pool = next(n for n in model.graph.node if n.name == "pool1")
    for a in pool.attribute:
        if a.name == "strides":
            a.ints[:] = [1, 1]
    onnx.save(model, tmp_path / "other.onnx")
    out = tmp_path / "d.html"
    assert cli("view", tmp_path / "other.onnx", "--diff", cnn_path, "--html", out,
               "--no-browser").code == 0  # fmt: skip
    status = {d["name"]: d.get("status") for d in page_data(out.read_text())["details"]}
    assert status["pool1"] == "changed" and status["conv1"] == "same" and status["fc"] == "same"


@pytest.mark.slow
def test_2700_node_model_page(cli, tmp_path):
    out = tmp_path / "wide.html"
    res = cli(
        "view", wide_model(300), "--html", out, "--svg", tmp_path / "wide.svg", "--no-browser"
    )
    assert res.code == 0 and "(2700 nodes)" in res.out, res
    assert len(page_data(out.read_text())["details"]) == 2702
    root = ET.parse(tmp_path / "wide.svg").getroot()
    assert sum(1 for g in root.iter(f"{SVG_NS}g") if "node" in g.get("class", "")) == 2702


def test_netron_serves_the_model_on_localhost(cnn_path):
    netron = pytest.importorskip("netron")
    from onnxpy.tools.view import serve_netron

    url = serve_netron(cnn_path, port=0, browse=False)
    try:
        assert url.startswith("http://localhost:") or url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "/", timeout=10) as r:
            assert r.status == 200 and b"netron" in r.read().lower()
    finally:
        netron.stop()
