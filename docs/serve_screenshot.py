"""The README's screenshot of ``rnnkit serve``: the models of a tour, every panel used once.

Usage (after ``rnnkit tour --out tour``): ``python docs/serve_screenshot.py tour docs/serve.png``.
Needs Debian's chromium and Playwright for Python. The PNG is reduced to 128 colours (< 300 KB).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import soundfile as sf
from PIL import Image
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "serve"))
from served_models import LiveServer  # noqa: E402

from rnnkit.serve import Settings, create_app, load_models  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def inputs(scratch: Path) -> dict[str, Path]:
    """A CSV of the S&P 500's last 200 closes, a caption test scene and a spoken test clip."""
    from rnnkit.apps.caption.experiment import synthetic_data
    from rnnkit.data.speech import synthetic_speech
    from rnnkit.data.timeseries import load_series

    scratch.mkdir(parents=True, exist_ok=True)
    series = load_series("sp500")
    series.frame[["time", series.target]].tail(200).to_csv(scratch / "sp500.csv", index=False)
    scene = synthetic_data("image", 4, 4, 0).test_inputs[0]
    Image.fromarray(scene).resize((128, 128)).save(scratch / "scene.png")
    sf.write(scratch / "clip.wav", synthetic_speech("test", 2)[0].audio, 16000)
    names = {"csv": "sp500.csv", "image": "scene.png", "wav": "clip.wav"}
    return {kind: scratch / name for kind, name in names.items()}


def use_every_panel(page, files: dict[str, Path]) -> None:
    def panel(app: str):
        return page.locator(f"section.panel[data-app='{app}']").first

    sentiment = panel("sentiment")
    sentiment.locator("textarea").fill("Not bad at all: a gorgeous, witty film.")
    sentiment.get_by_role("button", name="Classify").click()
    sentiment.locator(".token").first.wait_for()
    panel("translate").get_by_role("button", name="Translate").click()
    page.wait_for_function(
        "() => document.querySelector(\"[data-app='translate'] .output\").textContent.length"
    )
    panel("lm").get_by_role("button", name="Write").click()
    page.wait_for_selector("[data-app='lm'][data-done='1']")
    forecast = page.locator("#panel-forecast-sp500")
    forecast.locator("input[type=file]").set_input_files(str(files["csv"]))
    forecast.get_by_role("button", name="Forecast").click()
    forecast.locator("polygon.band").wait_for()
    panel("anomaly").get_by_role("button", name="Detect").click()
    panel("anomaly").locator(".legend").wait_for()
    speech = panel("speech")
    speech.locator("input[type=file]").set_input_files(str(files["wav"]))
    speech.get_by_role("button", name="Transcribe").click()
    page.wait_for_selector("[data-app='speech'][data-done='1']")
    caption = page.locator("#panel-caption-image")
    caption.locator("input[type=file]").set_input_files(str(files["image"]))
    caption.locator(".caption").wait_for()
    panel("music").get_by_role("button", name="Compose").click()
    panel("music").locator(".notes").wait_for()
    page.wait_for_function(
        "() => document.querySelector(\"[data-app='experiment'] img\").naturalWidth > 100"
    )


def main(tour: Path, out: Path) -> None:
    folders = sorted((tour / "models").iterdir()) + [tour / "experiment"]
    models = load_models(folders, Settings())
    scratch = tempfile.TemporaryDirectory(prefix="rnnkit-screenshot-")
    files = inputs(Path(scratch.name))
    with scratch, LiveServer(create_app(models, Settings())) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(60_000)
        page.goto(server.url + "/")
        page.wait_for_selector("section.panel")
        use_every_panel(page, files)
        page.screenshot(path=str(out), full_page=True)
        browser.close()
    image = Image.open(out).convert("RGB")
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        out, optimize=True
    )
    print(f"wrote {out} ({out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
