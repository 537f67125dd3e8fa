"""The studio clicked through in Debian's headless Chromium: what each page shows is the engine's answer."""
from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from facegen_cli.latent.directions import conditioned, move, sefa_directions  # noqa: E402
from facegen_cli.latent.mixing import style_mix  # noqa: E402
from facegen_cli.latent.sources import read_latent  # noqa: E402
from facegen_cli.latent.tuning import TuneOptions  # noqa: E402
from facegen_cli.sampler import Sampler  # noqa: E402
from facegen_cli.studio import browser  # noqa: E402
from studio_helpers import browsed_studio, needs_real_faces  # noqa: E402

pytestmark = pytest.mark.skipif(browser.missing() is not None, reason=f"no browser: {browser.missing()}")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """(url, net, driver, downloads): one studio and one browser for the module."""
    with browsed_studio(tmp_path_factory.mktemp("studio")) as found:
        yield found


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def shown(driver, element_id: str) -> np.ndarray:
    return pixels(browser.image_bytes(driver, driver.find_element("id", element_id)))


def wait_download(folder, name: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [p for p in folder.iterdir() if p.name == name]
        if found:
            return found[0]
        time.sleep(0.1)
    raise TimeoutError(f"no {name} in {sorted(p.name for p in folder.iterdir())}")


def test_explore_grid_pages_psi_and_downloads(site):
    url, net, driver, downloads = site
    browser.goto(driver, "explore")
    grid = driver.find_elements("css selector", "#explore-grid img")
    assert [int(img.get_attribute("data-seed")) for img in grid] == list(range(12))
    first = pixels(browser.image_bytes(driver, grid[0]))
    np.testing.assert_array_equal(first, next(Sampler(net, psi=0.7).samples([0])).image)
    browser.set_slider(driver, driver.find_element("id", "explore-psi"), 0.2)
    browser.wait_for(driver, "return document.querySelector('#explore-grid img').src !== arguments[0]", 60,
                     grid[0].get_attribute("src"))
    moved = pixels(browser.image_bytes(driver, driver.find_element("css selector", "#explore-grid img")))
    np.testing.assert_array_equal(moved, next(Sampler(net, psi=0.2).samples([0])).image)
    driver.find_element("id", "explore-next").click()
    browser.wait_for(driver, "return document.querySelector('#explore-grid img').dataset.seed === '12'")
    driver.find_element("css selector", "#explore-grid img[data-seed='14']").click()
    browser.wait_for(driver, "return !document.getElementById('explore-face').hidden")
    assert driver.find_element("id", "explore-face-name").text == "seed 14 (psi 0.2)"
    driver.find_element("id", "explore-face-png").click()
    png = wait_download(downloads, "seed-14-psi-0.2.png")
    sampler = Sampler(net, psi=0.2)
    ws = read_latent(sampler, 14)
    np.testing.assert_array_equal(pixels(png.read_bytes()), sampler.images(ws[None])[0])  # a valid PNG of that face
    driver.find_element("id", "explore-face-npy").click()
    np.testing.assert_array_equal(np.load(wait_download(downloads, "seed-14-psi-0.2.npy")), ws)
    browser.set_slider(driver, driver.find_element("id", "explore-psi"), 0.7)


def test_edit_sliders_change_the_face(site):
    url, net, driver, downloads = site
    browser.open_seed(driver, 5)
    browser.goto(driver, "edit")
    browser.settled(driver, "edit-img")
    sampler = Sampler(net, psi=0.7)
    ws = read_latent(sampler, 5)
    np.testing.assert_array_equal(shown(driver, "edit-img"), sampler.images(ws[None])[0])
    slider = driver.find_element("css selector", "#edit-sliders input[data-direction='sefa-01']")
    label = driver.find_element("css selector", "#edit-sliders label:nth-of-type(3)")  # rows: label, slider, value, fixed
    assert label.text.startswith("SeFa 2 (σ=") and "without labels" in label.get_attribute("title")
    before = driver.execute_script("return studio.shown")
    for value in np.linspace(0.1, 3.0, 30):  # a drag: each change supersedes the one before
        browser.set_slider(driver, slider, round(float(value), 1))
    browser.wait_for(driver, "return studio.shown > arguments[0]", 60, before)
    direction = {d.name: d for d in sefa_directions(net, 8)}["sefa-01"]
    expected = sampler.images(move(ws, conditioned(direction.vector, []), 3.0)[None])[0]  # as `facegen edit` moves
    assert np.abs(expected.astype(int) - sampler.images(ws[None])[0]).mean() > 1  # the slider changes the face
    browser.settled(driver, "edit-img")
    np.testing.assert_array_equal(shown(driver, "edit-img"), expected)  # the last position wins
    assert driver.find_element("id", "edit-latency").text.endswith(" ms")
    assert driver.execute_script("return studio.shown") - before < 30  # superseded positions were never drawn
    np.testing.assert_array_equal(shown(driver, "edit-before"), sampler.images(ws[None])[0])  # before beside after
    driver.find_element("id", "edit-npy").click()  # what the page shows, without keeping it
    edited = np.load(wait_download(downloads, "seed-5-psi-0.7-sefa-01-3.npy"))
    np.testing.assert_array_equal(sampler.images(edited[None])[0], expected)
    driver.find_element("id", "edit-keep").click()  # the edit becomes a face of its own, edited from zero
    browser.wait_for(driver, "return studio.state.faces.at(-1).name === 'seed 5 (psi 0.7), sefa-01 +3'")
    kept = driver.execute_script("return studio.state.faces.at(-1).id")
    driver.find_element("css selector", f"#tray-list li[data-face='{kept}'] .downloads a:first-child").click()
    np.testing.assert_array_equal(pixels(wait_download(downloads, "seed-5-psi-0.7-sefa-01-3.png").read_bytes()),
                                  expected)
    browser.wait_for(driver, "return document.querySelector('#edit-sliders output').textContent === '0'")
    browser.settled(driver, "edit-img")
    np.testing.assert_array_equal(shown(driver, "edit-img"), expected)


def test_mix_layers_live(site):
    url, net, driver, _ = site
    browser.open_seed(driver, 1)
    browser.open_seed(driver, 2)
    browser.goto(driver, "mix")
    faces = driver.execute_script("return studio.state.faces.map((f) => f.id)")
    driver.execute_script("""
        document.getElementById('mix-a').value = arguments[0];
        document.getElementById('mix-b').value = arguments[1];
        document.getElementById('mix-b').dispatchEvent(new Event('change'));""", faces[-2], faces[-1])
    seeded = Sampler(net, psi=0.7)
    wa, wb = read_latent(seeded, 1), read_latent(seeded, 2)
    for preset, layers in (("middle", [4, 5, 6, 7]), ("all", list(range(8))), ("none", [])):
        driver.find_element("css selector", f"[data-preset={preset}]").click()
        browser.settled(driver, "mix-img")
        np.testing.assert_array_equal(shown(driver, "mix-img"), seeded.images(style_mix(wa, wb, layers)[None])[0])


def test_morph_plays_h264_in_the_page(site):
    url, net, driver, _ = site
    browser.open_seed(driver, 3)
    browser.open_seed(driver, 4)
    browser.goto(driver, "morph")
    rows = driver.find_elements("css selector", "#morph-list label")
    for row in rows[-2:]:
        row.find_element("css selector", "input").click()
    ticked = driver.execute_script("return morphPayload().faces")
    rows[-1].find_element("css selector", "button.up").click()  # the last keyframe becomes the first of the two
    assert driver.execute_script("return morphPayload().faces") == ticked[::-1]
    assert driver.find_elements("css selector", "#morph-list label")[-1].get_attribute("data-face") == ticked[0]
    frames = driver.find_element("id", "morph-frames")
    frames.clear()
    frames.send_keys("8")
    driver.find_element("id", "morph-make").click()
    # readyState 2+ with a decoded width: Chromium decoded the H.264 stream itself
    browser.wait_for(driver, "const v = document.getElementById('morph-video');"
                             "return v.readyState >= 2 && v.videoWidth === 32 && v.duration > 0")
    browser.wait_for(driver, "const g = document.getElementById('morph-gif');"
                             "return g.complete && g.naturalWidth === 32")
    assert driver.find_element("id", "morph-status").text == "8 frames"


def test_quiz_scores_a_known_answer_sheet(site):
    needs_real_faces()
    url, net, driver, _ = site
    browser.goto(driver, "quiz")
    rounds = driver.find_element("id", "quiz-rounds")
    rounds.clear()
    rounds.send_keys("4")
    driver.find_element("id", "quiz-start").click()
    looks = set()
    for i in range(4):
        browser.wait_for(driver, "return document.getElementById('quiz-counter').textContent.startsWith(arguments[0])",
                         30, f"image {i + 1} of 4")
        browser.wait_for(driver, "return document.getElementById('quiz-img').complete")
        looks.add(tuple(driver.execute_script(  # how the page scales the image: alike for real and generated
            "const img = document.getElementById('quiz-img'), css = getComputedStyle(img);"
            "return [img.naturalWidth, img.naturalHeight, img.clientWidth, img.clientHeight, css.imageRendering,"
            " css.objectFit];")))
        driver.find_element("id", "quiz-real").click()
    assert looks == {(32, 32, 256, 256, "auto", "contain")}
    browser.wait_for(driver, "return !document.getElementById('quiz-result').hidden")
    assert driver.find_element("id", "quiz-score").text == "2 of 4 right"  # two real photos, all called real
    truths = [td.text for td in driver.find_elements("css selector", "#quiz-table tbody td:nth-child(3)")]
    assert sorted(truths) == ["generated", "generated", "real", "real"]
    assert len(driver.find_elements("css selector", "#quiz-hardest img")) == 2


def test_project_a_photo_then_edit_it(site, tmp_path):
    url, net, driver, downloads = site
    browser.goto(driver, "project")
    # the page starts from the tuning `project --tune` runs (the server's default, not a copy in the page)
    assert driver.find_element("id", "project-tune-steps").get_attribute("value") == str(TuneOptions().steps)
    box = driver.find_element("id", "project-steps")
    box.clear()
    box.send_keys("3")
    driver.execute_script("document.getElementById('project-align').value = 'none';"
                          "document.getElementById('project-perceptual').checked = false;"
                          "document.getElementById('project-tune').checked = false;")
    for name, colour in (("first.png", (40, 160, 60)), ("me.png", (150, 110, 90))):  # the second photo replaces the first
        photo = tmp_path / name
        Image.new("RGB", (40, 40), colour).save(photo)
        driver.find_element("id", "project-file").send_keys(str(photo))
        driver.find_element("id", "project-start").click()
        browser.wait_for(driver, "return studio.state.faces.at(-1)?.name === arguments[0]"
                                 " && !document.getElementById('project-done').hidden", 60, f"projected {name}")
        browser.wait_for(driver, "return document.getElementById('project-target').complete")
        assert shown(driver, "project-target").tolist() == [[list(colour)] * 32] * 32
    # the face is shown as soon as its latent exists; the job's last status comes with the next poll
    browser.wait_for(driver, "return document.getElementById('project-status').textContent.startsWith('done:')", 30)
    assert "done: step 3 of 3" in driver.find_element("id", "project-status").text
    driver.find_element("id", "project-npy").click()
    assert np.load(wait_download(downloads, "projected-me.png.npy")).shape == (net.G_ema.num_ws, net.G_ema.w_dim)
    driver.find_element("id", "project-edit").click()
    browser.wait_for(driver, "return !document.getElementById('page-edit').hidden")
    assert driver.execute_script("return document.getElementById('edit-face').selectedOptions[0].text") == \
        "projected me.png"


def test_bad_upload_shows_a_message(site, tmp_path):
    url, net, driver, _ = site
    bad = tmp_path / "latent.npy"
    bad.write_text("not numbers at all")
    driver.find_element("id", "upload-latent").send_keys(str(bad))
    browser.wait_for(driver, "return !document.getElementById('message').hidden")
    assert driver.find_element("id", "message-text").text == "latent.npy: not a latent (.npy or .npz) by its content"


def test_two_tabs_keep_their_own_faces(site):
    url, net, driver, _ = site
    first = driver.current_window_handle
    mine = driver.execute_script("return studio.state.faces.map((f) => f.id)")
    assert mine
    driver.switch_to.new_window("tab")
    try:
        browser.open_studio(driver, url)
        assert driver.execute_script("return studio.state.faces.length") == 0
        browser.open_seed(driver, 7)
        theirs = driver.execute_script("return studio.state.faces.map((f) => f.id)")
        assert len(theirs) == 1 and theirs[0] not in mine
    finally:
        driver.close()
        driver.switch_to.window(first)
    driver.execute_script("refreshFaces()")
    time.sleep(0.5)
    assert driver.execute_script("return studio.state.faces.map((f) => f.id)") == mine


def test_a_first_visit_explains_itself_and_refuses_bad_seeds(site):
    url, net, driver, _ = site
    first = driver.current_window_handle
    driver.switch_to.new_window("tab")  # a new tab: no faces yet
    try:
        browser.open_studio(driver, url)
        for page in ("edit", "mix", "morph", "project"):
            browser.goto(driver, page)
            hints = [p.text for p in driver.find_elements("css selector", f"#page-{page} .empty-state") if p.is_displayed()]
            assert len(hints) == 1 and ("Explore" in hints[0] or "photo" in hints[0]), page
            broken = driver.execute_script(  # an image on screen has a picture: no broken-image boxes or alt text
                "return [...document.querySelectorAll('img')].filter((i) => i.offsetParent !== null"
                " && !(i.complete && i.naturalWidth > 0)).map((i) => i.id || i.alt)")
            assert broken == [], page
        browser.goto(driver, "explore")
        assert driver.find_element("id", "explore-cutoff").is_displayed()  # a W+ network: truncation cutoff
        assert not driver.find_element("id", "explore-tx").is_displayed()  # move/turn: StyleGAN3 only
        label = driver.find_element("id", "explore-range").text
        box = driver.find_element("id", "explore-seed")
        for typed in ("-5", "99999999999"):
            box.clear()
            box.send_keys(typed)
            driver.find_element("id", "explore-go").click()
            browser.wait_for(driver, "return !document.getElementById('message').hidden")
            assert driver.find_element("id", "message-text").text == \
                f"seed must be a whole number from 0 to 4294967295 (got {typed})"
            assert driver.find_element("id", "explore-range").text == label  # still the page on screen
            assert driver.execute_script("return studio.state.faces.length") == 0  # seed 0 was not opened
        browser.open_seed(driver, 6)  # the next action that works takes the error away
        browser.wait_for(driver, "return document.getElementById('message').hidden")
        browser.goto(driver, "morph")
        driver.find_element("css selector", "#morph-list input").click()
        driver.find_element("id", "morph-make").click()
        browser.wait_for(driver, "return !document.getElementById('message').hidden")
        assert driver.find_element("id", "message-text").text == \
            "add at least two faces to morph between: tick them in the list"
    finally:
        driver.close()
        driver.switch_to.window(first)
