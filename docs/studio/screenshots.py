"""Take the README's screenshots of every studio page with the shipped model, in headless Chromium.

    python docs/studio/screenshots.py [--out docs/studio]

No photos from a dataset go into the repository, so the quiz's "real" folder and the photo that
the Project page projects are stand-ins: samples of the shipped model itself (other seeds).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from facegen_cli.networks import load_network
from facegen_cli.sampler import Sampler
from facegen_cli.studio import browser
from facegen_cli.studio.server import build_app, start_in_thread


def save(driver, out: Path, name: str) -> None:
    """A screenshot as a small palette PNG."""
    path = out / f"{name}.png"
    browser.wait_for(driver, "return [...document.images].every((i) => i.complete)")  # the tray's thumbnails too
    driver.save_screenshot(str(path))
    Image.open(path).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    net = load_network(None)
    with tempfile.TemporaryDirectory() as tmp:
        stand_ins = Path(tmp) / "real"
        stand_ins.mkdir()
        for sample in Sampler(net, psi=0.5).samples(range(1000, 1008)):
            Image.fromarray(sample.image).save(stand_ins / f"standin{sample.seed}.png")
        photo = Path(tmp) / "photo.png"
        face = next(Sampler(net, psi=0.5).samples([2024])).image
        Image.fromarray(face).resize((256, 256), Image.LANCZOS).save(photo)
        running = start_in_thread(build_app(net, stand_ins, state=Path(tmp) / "state"))  # the user's faces untouched
        driver = browser.chromium(width=1280, height=800)
        try:
            browser.open_studio(driver, running.url)
            faces = [browser.open_seed(driver, seed) for seed in (6, 1, 3)]
            save(driver, args.out, "explore")

            browser.goto(driver, "mix")
            driver.execute_script("document.getElementById('mix-a').value = arguments[0];"
                                  "document.getElementById('mix-b').value = arguments[1];", faces[2], faces[0])
            driver.find_element("css selector", "[data-preset=middle]").click()
            browser.settled(driver, "mix-img")
            for row in driver.find_elements("css selector", "#avg-list label")[:3]:
                row.find_element("css selector", "input").click()
            browser.settled(driver, "avg-img")
            save(driver, args.out, "mix")

            browser.goto(driver, "edit")
            driver.execute_script("const s = document.getElementById('edit-face'); s.value = arguments[0];"
                                  "s.dispatchEvent(new Event('change'));", faces[2])
            for name, value in (("sefa-00", 2.5), ("sefa-02", -2.0)):
                browser.set_slider(driver, driver.find_element(
                    "css selector", f"#edit-sliders input[data-direction='{name}']"), value)
            browser.settled(driver, "edit-img")
            save(driver, args.out, "edit")

            browser.goto(driver, "morph")
            for row in driver.find_elements("css selector", "#morph-list label")[:3]:
                row.find_element("css selector", "input").click()
            driver.find_element("id", "morph-loop").click()
            driver.find_element("id", "morph-make").click()
            browser.wait_for(driver, "const v = document.getElementById('morph-video'); return v.readyState >= 2", 300)
            driver.execute_script("const v = document.getElementById('morph-video'); v.pause(); v.currentTime = 0.8;")
            save(driver, args.out, "morph")

            browser.goto(driver, "project")
            driver.find_element("id", "project-file").send_keys(str(photo))
            driver.execute_script("document.getElementById('project-align').value = 'none';")
            driver.find_element("id", "project-start").click()  # the shipped encoder, then pivotal tuning
            browser.wait_for(driver, "return document.getElementById('project-status').textContent"
                                     ".startsWith('done')", 900)
            save(driver, args.out, "project")

            browser.goto(driver, "quiz")
            rounds = driver.find_element("id", "quiz-rounds")
            rounds.clear()
            rounds.send_keys("8")
            driver.find_element("id", "quiz-start").click()
            for i, answer in enumerate(np.random.default_rng(0).choice(["quiz-real", "quiz-generated"], 8)):
                browser.wait_for(driver, "return document.getElementById('quiz-counter').textContent"
                                         ".startsWith(arguments[0]) && document.getElementById('quiz-img').complete",
                                 60, f"image {i + 1} of")
                driver.find_element("id", answer).click()
            browser.wait_for(driver, "return !document.getElementById('quiz-result').hidden")
            save(driver, args.out, "quiz")
        finally:
            driver.quit()
            running.stop()


if __name__ == "__main__":
    main()
