"""`mre serve`'s page in a real browser: Debian's headless Chromium driven by selenium.

Searches, plays a result (play() resolves), seeks (`seeked` fires), opens a track view and
counts the map's points. With MRE_SCREENSHOT=docs/serve.png the page is saved there (the
README's picture). Skipped, saying why, where chromium, chromedriver or selenium are missing;
CI installs them (.ci/run).
"""
from __future__ import annotations

import json
import os
import shutil
import urllib.request

import pytest

from serve_stores import derived_store

from mre.retrieval.serve.server import ServerThread

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")


@pytest.fixture()
def browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install '.[test]')")
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium must not look for a browser download
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required", "--window-size=1366,768",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def test_search_play_seek_track_view_and_map_in_chromium(browser, tmp_path, store, music_library):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    served_store, _ = derived_store(store, music_library, tmp_path)
    wait = WebDriverWait(browser, 30)
    with ServerThread(served_store) as server:
        with urllib.request.urlopen(server.url + "api/map") as response:
            expected = json.load(response)
        browser.get(server.url)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
        canvas = browser.find_element(By.ID, "map")
        assert int(canvas.get_attribute("data-tracks")) == len(expected["tracks"]["track_id"]) == 8
        assert int(canvas.get_attribute("data-words")) == len(expected["words"]["tag"]) > 0

        # "/" focuses the search box; Enter searches
        browser.find_element(By.TAG_NAME, "body").send_keys("/")
        assert browser.switch_to.active_element.get_attribute("id") == "q"
        browser.switch_to.active_element.send_keys("calm piano", Keys.ENTER)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results li")) == 8)
        with urllib.request.urlopen(server.url + "api/query?q=calm+piano&k=10") as response:
            best = json.load(response)["hits"][0]["track_id"]
        first = browser.find_element(By.CSS_SELECTOR, "#results li")
        assert first.get_attribute("data-track-id") == best and first.get_attribute("aria-selected") == "true"
        assert "understood as" in browser.find_element(By.ID, "understood").text

        # arrows move in the results; space plays the selected one, and play() resolves
        browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_DOWN)
        second = browser.find_elements(By.CSS_SELECTOR, "#results li")[1]
        assert second.get_attribute("aria-selected") == "true"
        browser.find_element(By.TAG_NAME, "body").send_keys(Keys.SPACE)
        played = browser.execute_async_script("""
            const done = arguments[arguments.length - 1];
            Promise.resolve(window.mre.lastPlay).then(() => done('playing'), (e) => done('failed: ' + e));""")
        assert played == "playing"
        assert browser.execute_script("return document.getElementById('audio').src").endswith(
            "/audio/" + second.get_attribute("data-track-id"))
        assert browser.execute_script("return !document.getElementById('audio').paused")

        # seeking through the slider moves the audio: `seeked` fires at about the place asked for
        seeked = browser.execute_async_script("""
            const done = arguments[arguments.length - 1], audio = document.getElementById('audio');
            const go = () => {
              audio.addEventListener('seeked', () => done(audio.currentTime), {once: true});
              const seek = document.getElementById('seek');
              seek.value = '500';
              seek.dispatchEvent(new Event('input', {bubbles: true}));
            };
            if (Number.isFinite(audio.duration)) go(); else audio.addEventListener('loadedmetadata', go, {once: true});""")
        duration = browser.execute_script("return document.getElementById('audio').duration")
        assert seeked == pytest.approx(duration / 2, abs=0.5)

        # space again pauses
        browser.find_element(By.TAG_NAME, "body").send_keys(Keys.SPACE)
        wait.until(lambda d: d.execute_script("return document.getElementById('audio').paused"))

        # the track view: its tags, similar tracks and attributes
        first.find_element(By.CSS_SELECTOR, ".open").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#track-tags li .score")) == 12)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#track-similar li")) == 7)
        assert not browser.find_element(By.ID, "track-pane").get_attribute("hidden")
        attributes = browser.find_element(By.ID, "track-attributes").text
        assert "tempo" in attributes and "key" in attributes and "LUFS" in attributes

        # colour the map by an attribute: the legend says what the colours mean
        from selenium.webdriver.support.ui import Select

        Select(browser.find_element(By.ID, "colour-by")).select_by_value("attr:bpm")
        assert "bpm" in browser.find_element(By.ID, "legend").text
        assert int(canvas.get_attribute("data-tracks")) + int(canvas.get_attribute("data-words")) == \
            8 + len(expected["words"]["tag"])
        # nothing went wrong on the page: no script error, no request or style the content policy refused
        assert [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"] == []

        screenshot = os.environ.get("MRE_SCREENSHOT")
        if screenshot:
            os.makedirs(os.path.dirname(os.path.abspath(screenshot)), exist_ok=True)
            assert browser.save_screenshot(screenshot)
