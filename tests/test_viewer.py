"""The HTML viewer in a real browser: headless Chromium driven by selenium opens the file.

Skipped only when no Chromium and chromedriver are installed (Debian: `apt-get install chromium
chromium-driver`; `.ci/run` does it), and the skip says so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_rlm
from trajectories import write_run

from rlm_cli.runs.html import render
from rlm_cli.runs.records import read_run

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
CHROMEDRIVER = shutil.which("chromedriver")
CHROME_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,1400",
)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="no browser installed: the viewer test needs Chromium and chromedriver (apt-get install chromium chromium-driver)",
)


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the `test` extra has it)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROME_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chrome-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _open(browser: Any, page: Path) -> None:
    browser.get(page.as_uri())
    assert browser.execute_script("return document.body.dataset.ready") == "1", browser.get_log("browser")


def _css(browser: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(browser.find_elements(By.CSS_SELECTOR, selector))


def _rows_after(browser: Any, click: Any, count: int) -> list[Any]:
    """Click, then wait for `count` sub-call rows: <details> toggle events arrive as a later task."""
    from selenium.webdriver.support.ui import WebDriverWait

    click.click()
    WebDriverWait(browser, 10).until(lambda b: len(_css(b, "details.sub")) == count)
    return _css(browser, "details.sub")


def test_a_real_run_in_the_viewer(browser: Any, scripted_server, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("alpha\nbeta\n")
    first = "hits = context.grep('a')\nprint('</script><b>not bold</b>', len(hits))"
    second = "parts = llm_query_batched([f'Summarise part {i}: ' + context for i in range(3)])\nprint(parts)"
    server = scripted_server(
        ["I will grep first.\n" + repl(first), repl(second), repl("FINAL('two lines: alpha & <beta>')")],
        sub_answer=lambda prompt: f"summary of {prompt[:14]}",
    )
    trace = tmp_path / "t.jsonl"
    ran = run_rlm("ask", str(tmp_path / "in.txt"), "What is in the file?", *server.cli_args(), "--trace", str(trace))
    assert ran.code == 0, ran.stderr
    page = tmp_path / "run.html"
    page.write_text(render(read_run(trace)), encoding="utf-8")
    assert "http://" not in page.read_text() and "https://" not in page.read_text()  # nothing to fetch

    _open(browser, page)

    assert _css(browser, "#question")[0].text == "What is in the file?"
    assert _css(browser, "#answer")[0].text == "two lines: alpha & <beta>"
    cells = _css(browser, "section.cell")
    assert [c.get_attribute("data-cell") for c in cells] == ["1", "2", "3"]
    codes = [c.text for c in _css(browser, "section.cell pre.code")]
    assert codes == [first, second, "FINAL('two lines: alpha & <beta>')"]
    assert "</script><b>not bold</b> 2" in _css(browser, "section.cell pre.output")[0].text  # shown as text
    assert _css(browser, "pre.code span")  # highlighted

    assert not _css(browser, "details.sub")  # rows are built when their list opens
    from selenium.webdriver.support.ui import WebDriverWait

    rows = _rows_after(browser, _css(browser, "details.subs > summary")[0], 3)
    rows[1].find_element("css selector", "summary").click()
    WebDriverWait(browser, 10).until(lambda b: rows[1].find_elements("css selector", "pre.prompt"))
    prompt = rows[1].find_element("css selector", "pre.prompt").text
    assert prompt == "Summarise part 1: alpha\nbeta"
    assert rows[1].find_element("css selector", "pre.response").text == "summary of Summarise part"
    browser.save_screenshot(str(tmp_path / "viewer.png"))
    assert (tmp_path / "viewer.png").stat().st_size > 10_000


def test_thirty_turns_and_two_thousand_sub_calls_open_without_building_every_row(browser: Any, tmp_path: Path) -> None:
    trace = write_run(tmp_path / "big.jsonl", turns=30, subcalls=2000, sub_rlm=True)
    page = tmp_path / "big.html"
    page.write_text(render(read_run(trace)), encoding="utf-8")

    _open(browser, page)

    top_cells = _css(browser, "main > section.turn > section.cell")
    assert [c.get_attribute("data-cell") for c in top_cells] == [str(i) for i in range(1, 31)]
    nested = _css(browser, "section.cell[data-cell='1'] .children section.cell")
    assert [c.get_attribute("data-depth") for c in nested] == ["1", "1"]  # the sub-RLM, under the cell that ran it
    assert not _css(browser, "details.sub")

    lists = _css(browser, "details.subs")
    assert len(lists) == 30
    _rows_after(browser, lists[0].find_element("css selector", "summary"), 67 + 1)  # 2,000 over 30 cells, and the sub-RLM
    _rows_after(browser, lists[5].find_element("css selector", "summary"), 67 * 2 + 1)
    data = json.loads(browser.execute_script("return document.getElementById('run-data').textContent"))
    assert len(data["subcalls"]) == 2001
    assert _css(browser, "details.sub[data-id='1'] .mono")[0].text == "rlm #1"
    browser.save_screenshot(str(tmp_path / "big.png"))


def test_many_sub_calls_in_one_cell_come_a_page_at_a_time(browser: Any, tmp_path: Path) -> None:
    trace = write_run(tmp_path / "wide.jsonl", turns=1, subcalls=450, end=False)
    page = tmp_path / "wide.html"
    page.write_text(render(read_run(trace)), encoding="utf-8")

    _open(browser, page)

    _rows_after(browser, _css(browser, "details.subs > summary")[0], 200)
    more = _css(browser, "button.more")[0]
    assert more.text == "show 200 more (250 left)"
    more.click()  # a click handler runs at once
    assert len(_css(browser, "details.sub")) == 400
    more.click()
    assert len(_css(browser, "details.sub")) == 450 and not more.is_displayed()


def test_chromium_is_what_ci_installs() -> None:
    """The version, so a CI log says which browser the viewer was tested in."""
    out = subprocess.run([str(CHROMIUM), "--version"], capture_output=True, text=True, timeout=60).stdout
    assert "Chromium" in out or "Chrome" in out
