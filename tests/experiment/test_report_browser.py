"""Open a tiny experiment's report.html in headless Chromium (Debian's package; never
`playwright install`), check that the leaderboard shows the models of results.parquet, and save a
full-page screenshot as a test artifact (tests/experiment/artifacts/experiment_report.png, or
$LONGREC_TEST_ARTIFACTS)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from longrec.cli.main import app
from tests.experiment.test_experiment import EXPERIMENT, _write_data

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("LONGREC_TEST_ARTIFACTS", Path(__file__).parent / "artifacts"))


def test_report_renders_in_chromium(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    _write_data(tmp_path / "data")
    exp = tmp_path / "exp.toml"
    exp.write_text(EXPERIMENT)
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["experiment", str(exp), "--out", str(out)])
    assert r.exit_code == 0, r.output
    res = pd.read_parquet(out / "results.parquet")
    main = res[(res["metric"] == "NDCG") & (res["k"] == 10)].groupby("model")["value"].mean()
    expected_order = list(main.sort_values(ascending=False, kind="stable").index)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "experiment_report.png"
    shot.unlink(missing_ok=True)
    url = (out / "report.html").resolve().as_uri()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            external = []
            page.on("request", lambda q: external.append(q.url) if not q.url.startswith(("file:", "data:")) else None)
            page.goto(url)
            board = page.locator("table#leaderboard")
            assert board.is_visible()
            rows = board.locator("tr").evaluate_all("""trs => trs.slice(1).map(tr => ({
                model: tr.querySelector('td[data-col=value]').dataset.model,
                value: parseFloat(tr.querySelector('td[data-col=value]').dataset.value),
                text: tr.querySelector('td[data-col=value]').innerText,
                rank: tr.cells[0].innerText}))""")
            # one rendered row per model of results.parquet, best first, the numbers of results.parquet
            assert [row["model"] for row in rows] == expected_order
            assert [row["rank"] for row in rows] == [str(i) for i in range(1, len(rows) + 1)]
            for row in rows:
                assert row["value"] == pytest.approx(main[row["model"]], abs=1e-12)
                assert row["text"].startswith(f"{main[row['model']]:.4f}")
            # the laid-out table is not collapsed: each model row has a height on screen
            heights = board.locator("tr").evaluate_all("trs => trs.map(tr => tr.getBoundingClientRect().height)")
            assert len(heights) == len(main) + 1 and min(heights) > 10
            # the embedded plots decoded (a broken data: URI has naturalWidth 0)
            widths = page.locator("img").evaluate_all("imgs => imgs.map(i => i.naturalWidth)")
            assert widths and min(widths) > 100
            # nothing wider than the window: wide tables scroll inside the page instead
            assert page.evaluate("document.documentElement.scrollWidth") <= 1200
            page.screenshot(path=str(shot), full_page=True)
            assert external == []  # self-contained: nothing fetched from the network
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
