"""The web page of ``rnnkit serve`` in a real browser: Playwright driving Debian's chromium.

Every panel is used as a person would (type, upload, click, record) and the test asserts on
what the page then shows, against the API's own answers. Screenshots go to
``test-artifacts/serve/`` (gitignored).
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from served_models import (
    TOKEN,
    LiveServer,
    future_rows,
    seasonal_history,
    tone,
    train_covariates,
    two_series_with_workdays,
)

from rnnkit.serve import Settings, create_app, load_models

CHROMIUM = os.environ.get("RNNKIT_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "serve"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # A fake microphone (a beep) that needs no permission prompt: the record button works.
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists(),
    reason=f"no chromium at {CHROMIUM} (sudo apt-get install chromium)",
)


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(browser, live_server):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(live_server.url + "/")
    page.wait_for_selector("#panel-experiment")
    yield page
    context.close()


def post(live_server, path: str, **kwargs) -> dict:
    import httpx

    answer = httpx.post(live_server.url + path, timeout=30, **kwargs)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_one_panel_per_model(page, model_folders):
    panels = page.locator("section.panel")
    assert panels.count() == len(model_folders)
    assert sorted(panels.evaluate_all("ps => ps.map(p => p.dataset.app)")) == sorted(model_folders)
    assert "9 model(s) served" in page.locator("#status").inner_text()


def test_sentiment_panel_shows_the_label_and_highlights_words(page, live_server):
    panel = page.locator("#panel-sentiment")
    panel.locator("textarea").fill("the film is wonderful")
    panel.get_by_role("button", name="Classify").click()
    panel.locator(".token").nth(3).wait_for()
    expected = post(
        live_server, "/v1/models/sentiment/classify", json={"texts": ["the film is wonderful"]}
    )
    assert panel.locator(".label").inner_text() == expected["predictions"][0]["label"]
    assert panel.locator(".token").all_inner_texts() == ["the", "film", "is", "wonderful"]
    colours = panel.locator(".token").evaluate_all("ts => ts.map(t => t.style.background)")
    assert all(c.startswith("rgba(") for c in colours)
    panel.screenshot(path=ARTIFACTS / "sentiment.png")


def test_translate_panel_shows_the_translation(page, live_server):
    panel = page.locator("#panel-translate")
    panel.locator("textarea").fill("the dog sees the cat")
    panel.get_by_role("button", name="Translate").click()
    expected = post(
        live_server, "/v1/models/translate/translate", json={"sentences": ["the dog sees the cat"]}
    )["translations"][0]
    page.wait_for_function(
        "t => document.querySelector('#panel-translate .output').textContent === t", arg=expected
    )


def test_language_model_panel_writes_as_it_streams(page):
    panel = page.locator("#panel-lm")
    panel.get_by_label("prompt").fill("And God")
    panel.get_by_label("tokens").fill("40")
    panel.get_by_role("button", name="Write").click()
    page.wait_for_selector("#panel-lm[data-done='1']")
    text = panel.locator(".generated").inner_text()
    assert text.startswith("And God") and len(text) > len("And God")
    assert panel.locator(".error").inner_text() == ""


def test_forecast_panel_plots_the_uploaded_history_with_its_band(page, tmp_path):
    path = tmp_path / "history.csv"
    seasonal_history().to_csv(path, index=False)
    panel = page.locator("#panel-forecast")
    panel.locator("input[type=file]").set_input_files(str(path))
    panel.get_by_role("button", name="Forecast").click()
    panel.locator("polygon.band").wait_for()
    median = panel.locator("polyline.median").get_attribute("points").split()
    band = panel.locator("polygon.band").get_attribute("points").split()
    assert len(median) == 6 and len(band) == 12  # the horizon, upper and lower edges
    assert "80% band" in panel.locator(".legend").inner_text()
    panel.screenshot(path=ARTIFACTS / "forecast.png")


def test_forecast_panel_of_a_model_with_future_covariates_asks_for_them(browser, tmp_path):
    folder = tmp_path / "covariates"
    train_covariates(folder)
    history, future = tmp_path / "history.csv", tmp_path / "future.csv"
    two_series_with_workdays().to_csv(history, index=False)
    future_rows(two_series_with_workdays()).to_csv(future, index=False)
    with LiveServer(create_app(load_models([folder], Settings()), Settings())) as server:
        context = browser.new_context(viewport={"width": 1300, "height": 900})
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.goto(server.url + "/")
        panel = page.locator("#panel-covariates")
        assert "upload them as a second file (columns: time, series, workday)" in (
            panel.inner_text()
        )
        panel.get_by_label("history").set_input_files(str(history))
        panel.get_by_role("button", name="Forecast").click()
        page.wait_for_function(
            "() => document.querySelector('#panel-covariates .error').textContent.length > 0"
        )
        assert "choose the future covariates' file" in panel.locator(".error").inner_text()
        panel.get_by_label("future covariates").set_input_files(str(future))
        panel.get_by_role("button", name="Forecast").click()
        panel.locator("polygon.band").wait_for()
        assert len(panel.locator("polyline.median").get_attribute("points").split()) == 4
        assert panel.locator(".error").inner_text() == ""
        context.close()


def test_forecast_panel_shows_the_one_line_error_of_a_bad_file(page, tmp_path):
    path = tmp_path / "broken.csv"
    path.write_text('time,load\n"2024-01-01,1\n')
    panel = page.locator("#panel-forecast")
    panel.locator("input[type=file]").set_input_files(str(path))
    panel.get_by_role("button", name="Forecast").click()
    page.wait_for_function(
        "() => document.querySelector('#panel-forecast .error').textContent.length > 0"
    )
    assert panel.locator(".error").inner_text().startswith("broken.csv")


def test_anomaly_panel_flags_points(page, live_server):
    panel = page.locator("#panel-anomaly")
    panel.get_by_role("button", name="Detect").click()
    panel.locator(".legend").wait_for()
    flagged = panel.locator("circle.flag").count()
    assert f"{flagged} flagged points" in panel.locator(".legend").inner_text()


def wav_file(path: Path) -> Path:
    buffer = io.BytesIO()
    sf.write(buffer, np.concatenate([tone(300), tone(600)]), 16000, format="WAV")
    path.write_bytes(buffer.getvalue())
    return path


def test_speech_panel_transcribes_an_upload_and_a_recording(page, live_server, tmp_path):
    panel = page.locator("#panel-speech")
    wav = wav_file(tmp_path / "clip.wav")
    panel.locator("input[type=file]").set_input_files(str(wav))
    panel.get_by_role("button", name="Transcribe").click()
    page.wait_for_selector("#panel-speech[data-done='1']")
    files = {"file": ("clip.wav", wav.read_bytes(), "audio/wav")}
    expected = post(live_server, "/v1/models/speech/transcribe", files=files)["text"]
    assert panel.locator(".transcript").inner_text() == (expected or "(no speech heard)")
    # Under a word grammar, as `speech transcribe --words digits --one-word`.
    page.evaluate("() => { delete document.querySelector('#panel-speech').dataset.done; }")
    panel.get_by_label("words").fill("digits")
    panel.get_by_label("one word").check()
    panel.get_by_role("button", name="Transcribe").click()
    page.wait_for_selector("#panel-speech[data-done='1']")
    data = {"words": "digits", "one_word": "true"}
    expected = post(live_server, "/v1/models/speech/transcribe", files=files, data=data)["text"]
    assert panel.locator(".transcript").inner_text() == expected
    assert len(expected.split()) == 1
    panel.get_by_label("words").fill("")
    # The microphone (chromium's fake device): 3 s recorded, encoded as WAV in the page.
    page.evaluate("() => { delete document.querySelector('#panel-speech').dataset.done; }")
    panel.locator("button.record").click()
    page.wait_for_selector("#panel-speech[data-done='1']", timeout=30_000)
    assert panel.locator(".error").inner_text() == ""


def test_caption_panel_draws_an_attention_map_per_word(page, tmp_path):
    from PIL import Image

    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), np.uint8)).save(path)
    panel = page.locator("#panel-caption")
    panel.locator("input[type=file]").set_input_files(str(path))
    panel.locator(".caption").wait_for()
    words = panel.locator(".caption").inner_text().split()
    assert panel.locator("figure figcaption").all_inner_texts() == words
    assert panel.locator("figure canvas").count() == len(words)
    panel.screenshot(path=ARTIFACTS / "caption.png")


def test_music_panel_composes_and_plays_in_the_page(page):
    panel = page.locator("#panel-music")
    panel.get_by_label("bars").fill("2")
    panel.get_by_role("button", name="Compose").click()
    panel.locator(".notes").wait_for()
    assert "notes, 2 bars" in panel.locator(".notes").inner_text()
    href = panel.get_by_role("link", name="download MIDI").get_attribute("href")
    assert href.startswith("data:audio/midi;base64,TVRoZ")  # "MThd", a MIDI header
    if shutil.which("fluidsynth"):
        source = panel.locator("audio").get_attribute("src")
        assert source.startswith("data:audio/wav;base64,UklGR")  # "RIFF"


def test_experiment_panel_shows_the_gradient_plot(page):
    page.wait_for_function(
        "() => document.querySelector('#panel-experiment img').naturalWidth > 100"
    )


def test_full_page_screenshot(page):
    """Last: every panel has been used, so the screenshot shows them all with results."""
    page.screenshot(path=ARTIFACTS / "page.png", full_page=True)
    assert (ARTIFACTS / "page.png").stat().st_size > 10_000


def test_the_page_asks_for_the_token_when_one_is_set(browser, served):
    with LiveServer(create_app(served, Settings(token=TOKEN))) as server:
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.goto(server.url + "/")
        page.locator("#token-form").wait_for()
        assert "bearer token" in page.locator("#status").inner_text()
        page.locator("#token").fill(TOKEN)
        page.get_by_role("button", name="Use token").click()
        page.wait_for_selector("#panel-sentiment")
        assert page.locator("section.panel").count() == 9
        context.close()
