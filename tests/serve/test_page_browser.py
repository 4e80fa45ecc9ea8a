"""The search page end to end in a real headless browser (Debian's chromium + chromedriver, Selenium).

The test installs chromium with apt-get when it is missing (CI runs as root); it skips only when that
is impossible, and says why.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from servehelpers import (  # noqa: F401  (fixtures)
    index_folder,
    papers_file,
    running_server,
    serve_model_folder,
)

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1000",
)
WAIT_S = 60


def ensure_chromium() -> None:
    if os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER):
        return
    if shutil.which("apt-get") is None:
        pytest.skip("chromium is not installed and this system has no apt-get to install it")
    if os.geteuid() != 0:
        pytest.skip("chromium is not installed and installing it with apt-get needs root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"])
    for step in steps:
        result = subprocess.run(step, env=env, capture_output=True, text=True, timeout=1200)
        if result.returncode != 0:
            pytest.skip(f"could not install chromium ({' '.join(step)}: {result.stderr.strip()[-300:]})")
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip("apt-get installed chromium but /usr/bin/chromium or /usr/bin/chromedriver is missing")


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    ensure_chromium()
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    yield driver
    driver.quit()


def test_search_similar_papers_and_map_in_a_real_browser(browser, index_folder, serve_model_folder):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, WAIT_S)
    with running_server(index_folder, serve_model_folder) as base:
        browser.get(base + "/")
        wait.until(lambda d: "60 papers" in d.find_element(By.ID, "info").text)
        wait.until(lambda d: "papers shown" in d.find_element(By.ID, "map-status").text)

        # search: the query box, results with title, year, score and abstract
        browser.find_element(By.ID, "query").send_keys("statistical part-of-speech tagging")
        browser.find_element(By.ID, "search-button").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .result")) == 10)
        first = browser.find_elements(By.CSS_SELECTOR, "#results .result")[0]
        assert first.find_element(By.CSS_SELECTOR, ".title").text
        meta = first.find_element(By.CSS_SELECTOR, ".meta").text
        assert "score " in meta and any(str(year) in meta for year in range(1995, 2015))
        assert first.find_element(By.CSS_SELECTOR, ".abstract").text
        assert "of 60 papers" in browser.find_element(By.ID, "status").text

        # similar papers for a result
        first_id = first.get_attribute("data-paper-id")
        first.find_element(By.CSS_SELECTOR, ".similar-button").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#similar .result")) == 8)
        similar_ids = [
            e.get_attribute("data-paper-id") for e in browser.find_elements(By.CSS_SELECTOR, "#similar .result")
        ]
        assert first_id not in similar_ids and len(set(similar_ids)) == 8

        # the map: coloured points, a legend, and a click on a point opens that paper
        legend = browser.find_elements(By.CSS_SELECTOR, "#legend span")
        assert len(legend) == 3 and any("Machine Learning" in span.text for span in legend)
        canvas = browser.find_element(By.ID, "map")
        painted = browser.execute_script(
            "const c = document.getElementById('map');"
            "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            "let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n;"
        )
        assert painted > 60
        target = browser.execute_script(
            "const p = state.points[7], xy = project(p), c = document.getElementById('map');"
            "const r = c.getBoundingClientRect();"
            "return {id: p.paperId, title: p.title, x: xy[0] * r.width / c.width, y: xy[1] * r.height / c.height,"
            " w: r.width, h: r.height};"
        )
        ActionChains(browser).move_to_element_with_offset(
            canvas, int(target["x"] - target["w"] / 2), int(target["y"] - target["h"] / 2)
        ).click().perform()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#map-selection .result"))
        selected = browser.find_element(By.CSS_SELECTOR, "#map-selection .result")
        # the nearest point to the click: the target, or one drawn on the same pixels
        clicked = selected.get_attribute("data-paper-id")
        overlap = browser.execute_script(
            "const t = project(state.points[7]); return state.points.filter(p => { const q = project(p);"
            " return (q[0] - t[0]) ** 2 + (q[1] - t[1]) ** 2 < 4; }).map(p => p.paperId);"
        )
        assert clicked == target["id"] or clicked in overlap
        wait.until(lambda d: d.find_element(By.ID, "similar-title").text.startswith("Similar to: "))
        browser.find_element(By.ID, "colour-by").send_keys("by cluster")
        wait.until(lambda d: all("cluster" in s.text for s in d.find_elements(By.CSS_SELECTOR, "#legend span")))
        assert not [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
