"""The attention explorer at ``/`` in a real headless browser, against a real ``seqattn serve``.

What the page marks while a word is hovered is compared with what the JSON API answers for the
same request (the page keeps the request it sent in ``#result[data-request]``), so the page
cannot drift from the API. Needs Debian's Chromium and its driver
(``apt-get install chromium chromium-driver``); without them the tests fail, unless
``SEQATTN_SKIP_BROWSER=1`` skips them. Saves a screenshot (the README's
``docs/serve-explorer.png`` when ``SEQATTN_SCREENSHOT=docs/serve-explorer.png`` is set).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOT = os.environ.get("SEQATTN_SCREENSHOT")
SENTENCE = "A man in a blue shirt is playing the guitar."
KEY = "explorer-test-key"
WAIT_S = 20


def _require_browser() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if not missing:
        return
    if os.environ.get("SEQATTN_SKIP_BROWSER") == "1":
        pytest.skip(f"SEQATTN_SKIP_BROWSER=1 and {', '.join(missing)} missing")
    pytest.fail(f"the explorer's browser test needs {', '.join(missing)}: install them with "
                "'apt-get install chromium chromium-driver' (Debian/Ubuntu), or set "
                "SEQATTN_SKIP_BROWSER=1 to skip this test", pytrace=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _serve(env: dict[str, str] | None = None, model: str = "en-de") -> Iterator[str]:
    """A ``seqattn serve -m MODEL`` process for the duration; its base URL."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "seqattn", "serve", "-m", model, "--port", str(port)],
            stdout=log, stderr=log, env={**os.environ, **(env or {})})
        try:
            _wait_healthy(proc, url, log)
            yield url
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
            assert code == 0, f"the server exited {code} on SIGTERM"


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Any) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            pytest.fail(f"seqattn serve exited {proc.returncode}:\n{log.read().decode()}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail("seqattn serve did not answer /health within 60 s")


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)   # with the driver's path: no Selenium Manager
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1200,900", "--lang=en-US", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)),
                               options=options)
    try:
        chrome = browser.execute_script("return outerHeight - innerHeight")
        browser.set_window_size(1200, 900 + chrome)   # the page itself gets 1200 x 900
        yield browser
    finally:
        browser.quit()


@pytest.fixture(scope="module")
def server(driver: Any) -> Iterator[str]:   # after the driver: no server without a browser
    with _serve() as url:
        yield url


# ------------------------------------------------------------------------------ helpers

def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(f"{url}/v1/translate", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def _find(driver: Any, css: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css)


def _find_all(driver: Any, css: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, css)


def _settle(driver: Any, action: Any, want: str = "ready") -> None:
    """Do ``action`` (which sends a request), then wait until the page has its answer."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script("document.body.dataset.state = 'waiting'")
    action()
    state = WebDriverWait(driver, WAIT_S).until(
        lambda d: d.execute_script("const s = document.body.dataset.state;"
                                   "return s === 'ready' || s === 'error' ? s : null;"))
    assert state == want, f"page state {state}: {_find(driver, '#status').text}"


def _open(driver: Any, url: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{url}/")
    WebDriverWait(driver, WAIT_S).until(lambda d: _find_all(d, "#model option"))


def _translate(driver: Any, text: str) -> dict[str, Any]:
    """Type ``text``, press Translate; the request body the page sent."""
    box = _find(driver, "#text")
    box.clear()
    box.send_keys(text)
    _settle(driver, _find(driver, "#translate").click)
    return json.loads(_find(driver, "#result").get_attribute("data-request"))


def _choose(driver: Any, css: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    _settle(driver, lambda: Select(_find(driver, css)).select_by_value(value))


def _hover(driver: Any, css: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).move_to_element(_find(driver, css)).perform()


def _marked(driver: Any, side: str) -> set[int]:
    marked = _find_all(driver, f".{side}-word.linked")
    return {int(el.get_attribute("data-index")) for el in marked}


def _console_errors(driver: Any) -> list[str]:
    try:
        logs = driver.get_log("browser")
    except Exception:  # a driver without the log endpoint: nothing to read
        return []
    return [entry["message"] for entry in logs if entry["level"] == "SEVERE"]


def _check_hover_matches(driver: Any, record: dict[str, Any], targets: list[int],
                         sources: list[int]) -> None:
    """Hovering target j marks exactly the sources linked to j, shaded by row j of the
    attention; hovering source i marks exactly the targets linked to i."""
    links = [tuple(link) for link in record["links"]]
    for j in targets:
        _hover(driver, f'.tgt-word[data-index="{j}"]')
        assert _marked(driver, "src") == {i for i, t in links if t == j}, f"target {j}"
        for el in _find_all(driver, ".src-word"):
            i = int(el.get_attribute("data-index"))
            weight = float(el.get_attribute("data-weight"))
            assert weight == pytest.approx(record["attention"][j][i], abs=1e-6), (i, j)
    for i in sources:
        _hover(driver, f'.src-word[data-index="{i}"]')
        assert _marked(driver, "tgt") == {t for s, t in links if s == i}, f"source {i}"


# ------------------------------------------------------------------------------ tests

def test_hover_marks_what_the_api_answers(driver: Any, server: str, tmp_path: Path) -> None:
    _open(driver, server)
    labels = [el.text for el in _find_all(driver, "#model option")]
    assert labels == ["en → de (en-de)"]
    body = _translate(driver, SENTENCE)
    assert {k: body[k] for k in ("layer", "heads", "shift_att", "blend")} == dict.fromkeys(
        ("layer", "heads", "shift_att", "blend"))          # the model's own view
    record = _post(server, body)["translations"][0]
    assert _find(driver, "#translation").text == record["translation"]
    assert [el.text for el in _find_all(driver, ".src-word .txt")] == record["source_words"]
    assert [el.text for el in _find_all(driver, ".tgt-word .txt")] == record["target_words"]

    linked_targets = sorted({t for _, t in record["links"]})
    assert len(linked_targets) >= 2
    _check_hover_matches(driver, record, linked_targets, sorted({s for s, _ in record["links"]}))

    cells = {(int(td.get_attribute("data-src")), int(td.get_attribute("data-tgt")))
             for td in _find_all(driver, "#heatmap td.link")}
    assert cells == {tuple(link) for link in record["links"]}
    assert len(_find_all(driver, "#heatmap tr")) == len(record["target_words"]) + 1
    omitted = {int(el.get_attribute("data-index")) for el in _find_all(driver, ".src-word.omitted")}
    assert omitted == {o["index"] for o in record["checks"]["omitted"]}
    assert _find(driver, "#flags").text.startswith("Evidence card:")

    # the screenshot: the target word with the most links hovered, the heatmap in view
    busiest = max(linked_targets, key=lambda j: sum(t == j for _, t in record["links"]))
    _hover(driver, f'.tgt-word[data-index="{busiest}"]')
    shot = Path(SCREENSHOT) if SCREENSHOT else tmp_path / "explorer.png"
    shot.parent.mkdir(exist_ok=True)
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    assert _console_errors(driver) == []


def test_views_scripts_and_errors(driver: Any, server: str) -> None:
    _open(driver, server)
    _translate(driver, SENTENCE)
    views = [el.get_attribute("value") for el in _find_all(driver, "#view option")]
    assert views == ["model", "plain", "shift", "full"]    # en-de: no blend, an aligner
    assert not _find(driver, "#layer").is_displayed()
    _choose(driver, "#view", "plain")
    assert [el.text for el in _find_all(driver, "#layer option")] == ["0", "1", "2"]
    _choose(driver, "#layer", "1")
    _choose(driver, "#heads", "max")
    body = json.loads(_find(driver, "#result").get_attribute("data-request"))
    assert (body["layer"], body["heads"], body["shift_att"]) == (1, "max", False)
    record = _post(server, body)["translations"][0]
    _check_hover_matches(driver, record, [0, len(record["target_words"]) - 1], [0])
    last = len(record["target_words"]) - 1    # keyboard focus marks as hover does
    driver.execute_script("arguments[0].focus()", _find(driver, f'.tgt-word[data-index="{last}"]'))
    assert _marked(driver, "src") == {i for i, j in record["links"] if j == last}
    _choose(driver, "#view", "full")
    body = json.loads(_find(driver, "#result").get_attribute("data-request"))
    assert (body["layer"], body["heads"]) == (3, None)

    # CJK and RTL input: words come back whole, and the containers take the text's direction
    body = _translate(driver, "我在公园里看见一只狗。")
    record = _post(server, body)["translations"][0]
    assert [el.text for el in _find_all(driver, ".src-word .txt")] == record["source_words"]
    _check_hover_matches(driver, record, list(range(len(record["target_words"]))), [])
    _translate(driver, "שלום עולם")
    assert driver.execute_script(
        "return getComputedStyle(document.querySelector('#source')).direction") == "rtl"

    # an error from the API appears in the status line
    driver.execute_script("document.querySelector('#text').value = 'x'.repeat(2001)")
    _settle(driver, _find(driver, "#translate").click, want="error")
    assert "2000" in _find(driver, "#status").text
    errors = _console_errors(driver)
    assert all("413" in message for message in errors), errors   # the refused request only


def test_a_server_with_a_key_asks_for_it(driver: Any) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    with _serve(env={"SEQATTN_API_KEY": KEY}) as url:   # a new port: a new, empty sessionStorage
        driver.get(f"{url}/")
        WebDriverWait(driver, WAIT_S).until(lambda d: _find(d, "#api-key").is_displayed())
        assert "API key" in _find(driver, "#status").text
        _find(driver, "#api-key").send_keys("wrong")
        _settle(driver, _find(driver, "#key-save").click, want="error")
        assert "refused" in _find(driver, "#status").text
        _find(driver, "#api-key").clear()
        _find(driver, "#api-key").send_keys(KEY)
        _settle(driver, _find(driver, "#key-save").click)
        assert not _find(driver, "#key-row").is_displayed()
        _translate(driver, "A dog runs.")
        assert _find(driver, "#translation").text
        assert driver.execute_script("return sessionStorage.getItem('seqattn.apiKey')") == KEY


def test_a_model_without_attention_translates_and_says_so(driver: Any, tiny_noattn: Path) -> None:
    """model.attention none: the page asks for the translation only, says why there is
    nothing to align, draws no matrix, and logs no error."""
    _console_errors(driver)   # read (and so clear) what earlier tests logged
    with _serve(model=str(tiny_noattn)) as url:
        _open(driver, url)
        assert "no attention to show" in _find(driver, "#view-info").text
        assert _find_all(driver, "#view option") == []
        body = _translate(driver, "A dog runs.")
        assert "align" not in body
        assert _find(driver, "#translation").text == _post(url, body)["translations"][0][
            "translation"]
        assert _find_all(driver, "#heatmap tr") == [] and _find_all(driver, ".src-word") == []
        assert _console_errors(driver) == []
