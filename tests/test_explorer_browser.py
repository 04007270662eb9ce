"""The document explorer in a real headless browser (Debian's chromium + chromium-driver, which
`.ci/run` installs): it opens from disk, filters, sorts, pages and shows the chosen document."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from attn_interp.analysis.explorer import PAGE_SIZE, write_explorer
from attn_interp.analysis.model_results import ModelResults

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
# .ci/run installs the browser and sets this: there a missing browser is a failure, not a skip.
REQUIRED = os.environ.get("ATTN_INTERP_REQUIRE_BROWSER") == "1"
MISSING = "needs chromium and chromedriver (apt-get install chromium chromium-driver; .ci/run does)"
DOCS = 2000


def flat_results(n: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Erasure-like flat results (`to_flat` form) of len(n) documents with n items each: the
    columns `from_flat` requires, random values."""
    docs, total = len(n), int(n.sum())
    res = {
        "doc_id": np.arange(docs),
        "seq_len": n.astype(np.int32),
        "predicted": rng.integers(0, 4, docs),
        "predicted_head": np.zeros(docs, np.int32),
        "prediction_mismatch": np.zeros(docs, bool),
        "js_clipped": np.zeros(docs, np.int32),
        "kl_clipped": np.zeros(docs, np.int32),
        "p_predicted": rng.random(docs),
        "k_min": np.where(rng.random(docs) < 0.3, -1, rng.integers(1, 5, docs)),
        "k_min_frac": rng.random(docs),
        "label": rng.integers(0, 4, docs),
    }
    for target in ("top", "rand", "grad_top", "grad_rand", "gxa_top", "gxa_rand"):
        res[f"single_{target}_index"] = np.zeros(docs, np.int32)
        res[f"single_{target}_flip"] = np.where(
            rng.random(docs) < 0.2, rng.integers(0, 4, docs), -1
        )
        for col in ("weight", "js", "kl"):
            res[f"single_{target}_{col}"] = rng.random(docs)
    for rank in ("attention", "gradient", "grad_x_attention", "random0"):
        res[f"rank_{rank}_k"] = np.where(rng.random(docs) < 0.4, -1, rng.integers(1, 10, docs))
        res[f"rank_{rank}_frac"] = rng.random(docs)
        res[f"rank_{rank}_probmass"] = rng.random(docs)
    res["items/alpha"] = rng.random(total).astype(np.float32)
    res["items/gradient"] = rng.normal(size=total).astype(np.float32)
    res["items/single_js"] = rng.random(total).astype(np.float32)
    res["items/single_kl"] = rng.random(total).astype(np.float32)
    res["items/single_flip"] = np.full(total, -1, np.int32)
    return res


def _synthetic_model(seed: int = 0) -> tuple[ModelResults, dict]:
    """Erasure-like results of DOCS documents (FLAN-like, 1..40 tokens) and follow-up columns."""
    rng = np.random.default_rng(seed)
    n = rng.integers(1, 41, DOCS)
    total = int(n.sum())
    res = flat_results(n, rng)
    docs = [{"doc_index": i, "items": [f"w{i}_{j}<&>" for j in range(n[i])]} for i in range(DOCS)]
    followups = {
        "doc_index": np.arange(DOCS),
        "seq_len": n,
        "tau_gradient": np.where(n > 1, rng.uniform(-1, 1, DOCS), np.nan),
        "adv_js_eps0.01": rng.uniform(0, 0.69, DOCS),
        "items/adv_eps0.01": rng.random(total).astype(np.float32),
    }
    model = ModelResults(
        "synthetic", "flan_conv", res, summary={}, documents=docs, class_names=["a", "b", "c", "d"]
    )
    return model, followups


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None or DRIVER is None:
        if REQUIRED:
            pytest.fail(MISSING)
        pytest.skip(MISSING)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield driver
    driver.quit()


def _rows(driver) -> list[list[str]]:
    from selenium.webdriver.common.by import By

    return [
        [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
        for tr in driver.find_elements(By.CSS_SELECTOR, "#docs tbody tr")
    ]


def _headers(driver) -> list[str]:
    return driver.execute_script("return D.columns.map(c => c.key)")


def test_explorer_opens_filters_sorts_and_shows_a_document(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    model, followups = _synthetic_model()
    path = write_explorer(model, str(tmp_path / "explorer.html"), followups=followups)
    browser.get("file://" + os.path.abspath(path))
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return window.explorerReady"))
    cols = _headers(browser)
    assert {
        "doc",
        "gold",
        "pred",
        "n",
        "flip_attention",
        "k_attention",
        "k_min",
        "tau_gradient",
        "adv_js",
    } <= set(cols)
    rows = _rows(browser)
    assert len(rows) == PAGE_SIZE
    assert browser.find_element(By.ID, "count").text.startswith(f"{DOCS} of {DOCS} documents")

    n = model.results.docs.seq_len
    flips = model.results.singles["top"].flip >= 0
    browser.find_element(By.NAME, "filter_n").send_keys(">30")
    browser.find_element(By.NAME, "filter_flip_attention").send_keys("yes")
    expected = np.flatnonzero((n > 30) & flips)
    assert browser.find_element(By.ID, "count").text.startswith(f"{expected.size} of {DOCS}")
    rows = _rows(browser)
    assert len(rows) == min(PAGE_SIZE, expected.size)
    i_n, i_doc = cols.index("n"), cols.index("doc")
    assert [int(r[i_doc]) for r in rows] == expected[:PAGE_SIZE].tolist()
    assert all(int(r[i_n]) > 30 and r[cols.index("flip_attention")] == "yes" for r in rows)

    header = browser.find_element(By.CSS_SELECTOR, "th[data-col='adv_js'] .sort")
    header.click()
    header.click()  # descending
    rows = _rows(browser)
    adv = np.asarray(followups["adv_js_eps0.01"])[expected]
    top = expected[np.argsort(-adv, kind="stable")][: len(rows)]
    assert [int(r[i_doc]) for r in rows] == top.tolist()

    browser.find_elements(By.CSS_SELECTOR, "#docs tbody tr")[0].click()
    doc = int(top[0])
    spans = browser.find_elements(By.CSS_SELECTOR, "#view .row[data-shade='attention'] .it")
    assert [s.text for s in spans] == [f"w{doc}_{j}<&>" for j in range(n[doc])]
    assert browser.find_elements(By.CSS_SELECTOR, "#view .row[data-shade='adversarial attention']")
    browser.save_screenshot(str(tmp_path / "explorer.png"))

    for name in ("filter_n", "filter_flip_attention"):
        browser.find_element(By.NAME, name).clear()
        browser.execute_script(
            f"document.getElementsByName('{name}')[0].dispatchEvent(new Event('input'))"
        )
    browser.find_element(By.NAME, "next").click()
    assert "page 2 of 40" in browser.find_element(By.ID, "count").text
