"""Drive the web page in headless Chromium (Debian's package; never `playwright install`)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.serve.conftest import KEY, free_port, start_server

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("LONGREC_TEST_ARTIFACTS", Path(__file__).parent / "artifacts"))


@pytest.fixture
def server(model_dir, tmp_path):
    port = free_port()
    proc = start_server(model_dir, tmp_path / "web.sqlite", port)
    yield f"http://127.0.0.1:{port}"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)


def test_web_page_ask_click_add(server):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            external = []
            page.on("request", lambda r: external.append(r.url) if not r.url.startswith(server) else None)
            page.goto(server + "/")
            page.wait_for_function("document.querySelector('#status').textContent.includes('items')")
            page.fill("#apikey", KEY)
            page.select_option("#user", "1")
            page.click("#ask")
            page.wait_for_selector("#recs li.rec")
            first = page.locator("#recs li.rec").evaluate_all("els => els.map(e => e.dataset.itemId)")
            assert len(first) == 10
            assert "because you liked" in page.locator("#recs li.rec").first.inner_text()

            # click two items: each is posted as an event and the list is refreshed without them
            for _ in range(2):
                before = page.locator("#recs li.rec").evaluate_all("els => els.map(e => e.dataset.itemId)")
                clicked = before[0]
                page.locator("#recs li.rec").first.click()
                page.wait_for_function(
                    "id => ![...document.querySelectorAll('#recs li.rec')].some(e => e.dataset.itemId === id)", arg=clicked)
            after = page.locator("#recs li.rec").evaluate_all("els => els.map(e => e.dataset.itemId)")
            assert after != first and not set(first[:2]) & set(after)
            assert page.locator("#clicks li").count() == 2
            assert page.inner_text("#error") == ""

            # add an item by text: it shows up in this user's list, marked new
            page.fill("#new-id", "web-new")
            page.fill("#new-text", "Item 1 Item 3 Item 5. Genres: Odd.")
            page.click("#add")
            page.wait_for_selector("#recs li.rec[data-item-id='web-new']")
            assert "new" in page.locator("#recs li.rec[data-item-id='web-new']").inner_text()
            assert "added in" in page.inner_text("#add-result")

            # free-text query
            page.fill("#text", "Item 7")
            page.click("#ask")
            page.wait_for_function("document.querySelector('#recs li.rec').dataset.itemId === '7'")
            page.screenshot(path=str(ARTIFACTS / "serve_web.png"), full_page=True)
            assert external == []  # no CDN, nothing outside the app
        finally:
            browser.close()
    assert (ARTIFACTS / "serve_web.png").stat().st_size > 1000
