"""`selectkit report` pages in a real headless Chromium (Debian's chromium + chromedriver,
driven by selenium): they load from disk with no console errors and no network request, every
chart has drawn content, hovering a map point shows its document's text, and a screenshot of
each page type is kept (in the test's tmp folder and in /tmp/report-shots/).

Skipped when chromium, chromedriver or selenium is missing, unless SELECTKIT_REQUIRE_BROWSER=1
(set by .ci/run once it has installed chromium), which turns the skip into a failure.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import polars as pl
import pytest

import selectkit as sk

from .test_report import art, disco_eval, disco_predicted  # noqa: F401  (the same artefacts)

CHROMIUM = os.environ.get("SELECTKIT_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SELECTKIT_CHROMEDRIVER", "/usr/bin/chromedriver")
SHOTS = Path("/tmp/report-shots")


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install 'selectkit[test]')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} not found (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture(scope="module")
def browser():
    why = _missing()
    if why:
        if os.environ.get("SELECTKIT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"SELECTKIT_REQUIRE_BROWSER=1 but {why}")
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,2200",
        "--force-device-scale-factor=1",
        # any request that is not the file itself goes to a dead proxy and fails; the
        # performance log below records every request the page tried
        "--proxy-server=http://127.0.0.1:9",
        "--proxy-bypass-list=<-loopback>",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _requests(driver) -> list[str]:
    """URLs of every request the page made since the last call (CDP Network events)."""
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def _open(driver, page: Path) -> None:
    driver.get_log("browser")
    driver.get_log("performance")  # drop what earlier pages logged
    driver.get(page.resolve().as_uri())
    assert driver.execute_script("return document.readyState") == "complete"
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert not errors, errors
    others = [u for u in _requests(driver) if u != page.resolve().as_uri()]
    assert not others, f"the page made network requests: {others}"


def _charts_drawn(driver) -> int:
    """Check every SVG chart has shapes and every canvas has non-white pixels; return charts."""
    counts = driver.execute_script(
        """
        return Array.from(document.querySelectorAll('svg.chart')).map(function (s) {
          var area = 0;
          s.querySelectorAll('path, rect, circle').forEach(function (e) {
            var b = e.getBBox(); area += b.width * b.height;
          });
          return area;
        });"""
    )
    # laid-out shapes covering some area (not just an empty frame and a legend swatch)
    assert counts and all(a > 2000 for a in counts), counts
    inked = driver.execute_script(
        """
        return Array.from(document.querySelectorAll('canvas.skmap')).map(function (c) {
          var px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data, n = 0;
          for (var i = 0; i < px.length; i += 4) {
            if (px[i] < 240 || px[i + 1] < 240 || px[i + 2] < 240) { n++; }
          }
          return n;
        });"""
    )
    assert all(n > 500 for n in inked), inked
    return len(counts) + len(inked)


def _shot(driver, tmp_path: Path, name: str) -> Path:
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1400, min(max(height + 40, 900), 4000))
    path = tmp_path / f"{name}.png"
    assert driver.save_screenshot(str(path))
    SHOTS.mkdir(exist_ok=True)
    shutil.copy(path, SHOTS / path.name)
    driver.set_window_size(1400, 2200)
    return path


def _hover(driver, canvas) -> str:
    """Move the mouse onto the canvas's probe point (a pick the page exposes); the tooltip."""
    from selenium.webdriver.common.action_chains import ActionChains

    x = float(canvas.get_attribute("data-probe-x"))
    y = float(canvas.get_attribute("data-probe-y"))
    size = canvas.size
    # selenium offsets are from the element's centre
    ActionChains(driver).move_to_element_with_offset(
        canvas, round(x - size["width"] / 2), round(y - size["height"] / 2)
    ).perform()
    tip = canvas.find_element("xpath", "following-sibling::div[@class='tip']")
    assert tip.is_displayed()
    return tip.text


def test_selection_page_in_chromium(browser, art, tmp_path):  # noqa: F811
    page = tmp_path / "selection.html"
    sk.write_report([art["kcenter"], art["emb"], art["clusters"], art["corpus"]], page)
    _open(browser, page)
    assert _charts_drawn(browser) >= 4  # cluster and label shares, score histogram, the map
    canvas = browser.find_element("css selector", "canvas.skmap")
    assert canvas.get_attribute("data-drawn") == "400"
    probe = canvas.get_attribute("data-probe-id")
    text = _hover(browser, canvas)
    corpus = pl.read_ndjson(art["corpus"]).filter(pl.col("id") == probe)
    assert probe in text and "picked by kcenter" in text
    assert corpus["text"][0][:40].split("\n")[0].strip() in text
    _shot(browser, tmp_path, "selection")


def test_compare_page_in_chromium(browser, art, tmp_path):  # noqa: F811
    page = tmp_path / "compare.html"
    sk.write_report(
        [art["kcenter"], art["random"], art["emb"], art["clusters"], art["corpus"]], page
    )
    _open(browser, page)
    assert _charts_drawn(browser) >= 4
    canvases = browser.find_elements("css selector", "canvas.skmap")
    assert len(canvases) == 2
    text = _hover(browser, canvases[1])
    assert canvases[1].get_attribute("data-probe-id") in text and "random" in text
    _shot(browser, tmp_path, "compare")


def test_curves_page_in_chromium(browser, art, tmp_path):  # noqa: F811
    page = tmp_path / "curves.html"
    sk.write_report(art["curves"], page)
    _open(browser, page)
    assert _charts_drawn(browser) == 2
    _shot(browser, tmp_path, "curves")


def test_disco_page_in_chromium(browser, disco_eval, tmp_path):  # noqa: F811
    page = tmp_path / "disco.html"
    sk.write_report(disco_eval, page)
    _open(browser, page)
    assert _charts_drawn(browser) == 2
    _shot(browser, tmp_path, "disco")


def test_tables_read_without_javascript(browser, art, tmp_path):  # noqa: F811
    page = tmp_path / "nojs.html"
    sk.write_report([art["kcenter"], art["emb"], art["clusters"]], page)
    browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    try:
        browser.get(page.resolve().as_uri())
        cells = browser.find_elements("css selector", "table td")
        assert len(cells) > 50 and any(c.text == "kcenter" for c in cells)
        assert (
            browser.find_element("css selector", "canvas.skmap").get_attribute("data-drawn") is None
        )  # the script did not run, the tables are there all the same
    finally:
        browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})


def test_disco_predicted_page_in_chromium(browser, disco_predicted, tmp_path):  # noqa: F811
    page = tmp_path / "predicted.html"
    sk.write_report(list(disco_predicted), page)
    _open(browser, page)
    assert _charts_drawn(browser) == 1
    _shot(browser, tmp_path, "disco-predicted")


def test_the_checks_catch_a_page_that_fetches(browser, tmp_path):
    """The network and console checks can fail: a page that loads an image from a server."""
    page = tmp_path / "fetches.html"
    page.write_text('<!DOCTYPE html><html><body><img src="http://127.0.0.1:9/x.png"></body></html>')
    with pytest.raises(AssertionError, match=r"network requests|SEVERE"):
        _open(browser, page)


@pytest.mark.slow
def test_a_50k_point_map_draws_and_hovers(browser, tmp_path):
    """Synthetic vectors (only for scale): 50,000 points draw on load and the hover finds one."""
    import time

    import numpy as np

    emb = tmp_path / "emb.npy"
    np.save(emb, np.random.default_rng(0).standard_normal((50_000, 16)).astype(np.float32))
    manifest = tmp_path / "m.parquet"
    sk.select_files([emb], manifest, strategy="random", budget=200, metrics=False)
    page = tmp_path / "big.html"
    sk.write_report([manifest, emb], page)
    started = time.perf_counter()
    _open(browser, page)
    canvas = browser.find_element("css selector", "canvas.skmap")
    assert canvas.get_attribute("data-drawn") == "50000"
    assert time.perf_counter() - started < 20  # loads and draws in seconds, even on 2 cores
    assert canvas.get_attribute("data-probe-id") in _hover(browser, canvas)
