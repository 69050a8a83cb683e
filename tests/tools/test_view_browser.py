"""The `onnxpy view` page in a real headless Chromium (Debian's chromium + chromium-driver,
driven by selenium): every node is found, search and click show a node's attributes, no
JavaScript error reaches the console, and a screenshot is kept as a test artifact in
``$ONNXPY_CACHE_DIR/artifacts/view`` (default ``~/.cache/onnxpy/artifacts/view``)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import onnx
import pytest

from tests.tools.models import cache, wide_model

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM and DRIVER),
        reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
    ),
]


def artifacts() -> Path:
    d = cache().parent / "artifacts" / "view"
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="onnxpy-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 f"--user-data-dir={profile}", "--window-size=1400,900"):  # fmt: skip
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _errors(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def _open_find_search_click(driver, html: Path, model: Path, target: str, screenshot: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.get(html.as_uri())
    # every node of the model (and the graph's inputs and outputs) is a box on the page
    names = driver.execute_script(
        "return Array.from(document.querySelectorAll('g.node')).map(g => g.dataset.name)"
    )
    graph = onnx.load(str(model), load_external_data=False).graph
    inits = {t.name for t in graph.initializer}
    expected = [v.name for v in graph.input if v.name not in inits]
    expected += [n.name for n in graph.node] + [v.name for v in graph.output]
    assert sorted(names) == sorted(expected)
    # search by name, Enter brings it into view and opens it; then click it as a user would
    box = driver.find_element(By.ID, "search")
    box.send_keys(target)
    assert driver.find_element(By.ID, "count").text.endswith(("match", "matches"))
    box.send_keys(Keys.ENTER)
    node = driver.find_element(By.CSS_SELECTOR, f'g.node[data-name="{target}"]')
    assert "selected" in node.get_attribute("class")
    driver.find_element(By.ID, "details").click()  # focus away, then click the node itself
    node.click()
    panel = driver.find_element(By.ID, "details")
    assert driver.find_element(By.ID, "detail-name").text == target
    path = artifacts() / screenshot
    assert driver.save_screenshot(str(path)) and path.stat().st_size > 10_000
    assert _errors(driver) == []
    return panel.text


def test_cnn_page_in_chromium(browser, cli, cnn_path, tmp_path):
    html = tmp_path / "cnn.html"
    assert cli("view", cnn_path, "--html", html, "--profile", "--no-browser").code == 0
    text = _open_find_search_click(browser, html, cnn_path, "conv2", "cnn_profile.png")
    # its attributes, inputs with initializer sizes, and its measured time
    assert "kernel_shape [3, 3]" in text
    assert "pads" in text and "[1, 1, 1, 1]" in text
    assert "conv2.w" in text and "4,608 bytes" in text
    assert "ms per run" in text


def test_2700_node_page_in_chromium(browser, cli, tmp_path):
    model = wide_model(300)
    html = tmp_path / "wide.html"
    assert cli("view", model, "--html", html, "--no-browser").code == 0
    text = _open_find_search_click(browser, html, model, "b150/mean", "wide_2700.png")
    assert "axes" in text and "[-1]" in text


def test_diff_page_in_chromium(browser, cli, cnn_path, tmp_path):
    opt = tmp_path / "opt.onnx"
    assert cli("optimize", cnn_path, "-o", opt, "--level", "extended").code == 0
    html = tmp_path / "diff.html"
    assert cli("view", opt, "--diff", cnn_path, "--html", html, "--no-browser").code == 0
    from selenium.webdriver.common.by import By

    browser.get(html.as_uri())
    removed = browser.find_elements(By.CSS_SELECTOR, "g.node.s-removed")
    added = browser.find_elements(By.CSS_SELECTOR, "g.node.s-added")
    assert len(removed) == 6 and len(added) == 2
    assert "2 added, 0 changed, 6 removed" in browser.find_element(By.ID, "stats").text
    browser.save_screenshot(str(artifacts() / "cnn_diff.png"))
    assert _errors(browser) == []
