"""`mre serve`'s page in a real browser: Debian's headless Chromium driven by selenium.

Searches, plays a result (play() resolves), seeks (`seeked` fires), opens a track view and
counts the map's points; opens the duplicates view, counts its groups and players, plays a copy. With MRE_SCREENSHOT=docs/serve.png the page is saved there (the
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


def test_duplicates_view_lists_groups_with_a_player_per_copy(browser, duplicates_store):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    store, _ = duplicates_store
    wait = WebDriverWait(browser, 30)
    with ServerThread(store) as server:
        expected = {}
        while "groups" not in expected:   # 202 while the report is made
            with urllib.request.urlopen(server.url + "api/duplicates") as response:
                expected = json.load(response)
        browser.get(server.url)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
        # reached by the keyboard: Tab to the button, Enter opens the view
        button = browser.find_element(By.ID, "show-duplicates")
        browser.execute_script("document.getElementById('show-search').focus()")
        browser.switch_to.active_element.send_keys(Keys.TAB)
        assert browser.switch_to.active_element == button
        button.send_keys(Keys.ENTER)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".dup-group")) == len(expected["groups"]) == 1)
        assert button.get_attribute("aria-pressed") == "true"
        assert browser.find_element(By.ID, "results-pane").get_attribute("hidden")
        cards = browser.find_elements(By.CSS_SELECTOR, ".dup-group .copy")
        assert len(cards) == len(browser.find_elements(By.CSS_SELECTOR, ".dup-group .copy audio")) == 4
        # the copy to keep is first and said in words, with its reason; the others say their kind
        assert "KEEP" in cards[0].text and "keep" in cards[0].get_attribute("class")
        assert expected["groups"][0]["keep_reason"] in browser.find_element(By.CSS_SELECTOR, ".dup-group .why").text
        assert "trimmed or faded" in " ".join(card.text for card in cards[1:])
        assert "MP3" in " ".join(card.text for card in cards) and "kbps" in cards[1].text
        # nothing on the page can delete or move a file
        assert not [b.text for b in browser.find_elements(By.TAG_NAME, "button")
                    if any(word in b.text.lower() for word in ("delete", "remove", "move"))]

        # play the second copy (play() resolves), then the third: only one plays at a time
        cards[1].find_element(By.CSS_SELECTOR, ".play").click()
        played = browser.execute_async_script("""
            const done = arguments[arguments.length - 1];
            Promise.resolve(window.mre.lastPlay).then(() => done('playing'), (e) => done('failed: ' + e));""")
        assert played == "playing"
        cards[2].find_element(By.CSS_SELECTOR, ".play").click()
        wait.until(lambda d: d.execute_script(
            "return [...document.querySelectorAll('.copy audio')].map((a) => !a.paused)") == [False, False, True, False])
        assert "playing" in cards[2].get_attribute("class") and "Pause" in cards[2].find_element(
            By.CSS_SELECTOR, ".play").get_attribute("aria-label")
        assert [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"] == []
