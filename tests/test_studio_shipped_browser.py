"""The studio on the shipped model, clicked through in Debian's headless Chromium: a photo projected by the
shipped encoder and tuned, then edited beside its photo on its tuned network, with its downloads; a face set
to a value by a control, the value the image reads shown beside the one asked for."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from facegen_cli.controls.steer import steer  # noqa: E402
from facegen_cli.estimators.face import read_face  # noqa: E402
from facegen_cli.latent.directions import conditioned, load_direction, move  # noqa: E402
from facegen_cli.latent.sources import read_latent  # noqa: E402
from facegen_cli.networks import load_network  # noqa: E402
from facegen_cli.paths import weights_dir  # noqa: E402
from facegen_cli.sampler import Sampler  # noqa: E402
from facegen_cli.studio import browser  # noqa: E402
from studio_helpers import browsed_studio  # noqa: E402
from test_studio_browser import pixels, shown, wait_download  # noqa: E402
from test_studio_shipped_api import photo_png  # noqa: E402

pytestmark = pytest.mark.skipif(browser.missing() is not None, reason=f"no browser: {browser.missing()}")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """(url, net, driver, downloads): a studio on the shipped model and one browser for the module."""
    with browsed_studio(tmp_path_factory.mktemp("studio"), weights_dir() / "default.safetensors") as found:
        yield found


def test_a_photo_is_encoded_at_once_tuned_then_edited_beside_it(site, tmp_path):
    url, net, driver, downloads = site
    photo = tmp_path / "me.png"
    photo.write_bytes(photo_png())
    target = np.asarray(Image.open(photo))
    browser.goto(driver, "project")
    assert driver.execute_script("return document.getElementById('project-method').value") == "encoder"
    assert not driver.find_element("id", "project-steps").is_displayed()  # the encoder takes no steps
    driver.execute_script("document.getElementById('project-align').value = 'none';"
                          "document.getElementById('project-perceptual').checked = false;")
    steps = driver.find_element("id", "project-tune-steps")
    steps.clear()
    steps.send_keys("2")
    driver.find_element("id", "project-file").send_keys(str(photo))
    driver.find_element("id", "project-start").click()
    browser.wait_for(driver, "return studio.state.faces.some((f) => f.name === 'encoded me.png')", 60)
    browser.wait_for(driver, "return studio.state.faces.at(-1).name === 'tuned me.png'"
                             " && document.getElementById('project-status').textContent.startsWith('done')", 120)
    assert driver.execute_script("const p = document.getElementById('project-progress'); return [p.value, p.max]") \
        == [2, 2]
    assert "tuning step 2 of 2" in driver.find_element("id", "project-status").text
    assert "tuned: PSNR" in driver.find_element("id", "project-quality").text
    driver.find_element("id", "project-network").click()
    tuned_file = wait_download(downloads, "tuned-me.png.safetensors")
    tuned = load_network(str(tuned_file))
    driver.find_element("id", "project-npy").click()
    ws = np.load(wait_download(downloads, "tuned-me.png.npy"))

    driver.find_element("id", "project-edit").click()
    browser.wait_for(driver, "return !document.getElementById('page-edit').hidden")
    browser.settled(driver, "edit-img")
    assert shown(driver, "edit-photo").tolist() == target.tolist()  # photo | reconstruction | edited
    np.testing.assert_array_equal(shown(driver, "edit-before"), Sampler(tuned).images(ws[None])[0])
    assert driver.find_element("id", "edit-before-caption").text == "reconstruction (tuned network)"
    slider = driver.find_element("css selector", "#edit-sliders input[data-direction='Smiling']")
    browser.set_slider(driver, slider, 2.0)
    browser.settled(driver, "edit-img")
    smiling = load_direction("Smiling", net)
    edited = Sampler(tuned).images(move(ws, conditioned(smiling.vector, []), 2.0, smiling.layers)[None])[0]
    np.testing.assert_array_equal(shown(driver, "edit-img"), edited)  # drawn by the tuned network
    driver.find_element("id", "edit-png").click()
    png = wait_download(downloads, "tuned-me.png-Smiling-2.png")
    np.testing.assert_array_equal(pixels(png.read_bytes()), edited)
    driver.find_element("id", "edit-network").click()
    assert wait_download(downloads, "tuned-me.png-Smiling-2.safetensors").read_bytes() == tuned_file.read_bytes()
    browser.set_slider(driver, slider, 0)


def test_controls_set_the_face_to_a_value_and_show_what_the_image_reads(site):
    url, net, driver, _ = site
    browser.open_seed(driver, 3)
    browser.goto(driver, "edit")
    sampler = Sampler(net, psi=0.7)
    ws = read_latent(sampler, 3)
    age = float(read_face(sampler.images(ws[None]))["Age"][0])
    read = driver.find_element("css selector", "#edit-controls output.read[data-control='Age']")
    browser.wait_for(driver, "return arguments[0].textContent === arguments[1]", 60, read, f"read: {age:.1f} years")
    slider = driver.find_element("css selector", "#edit-controls input[data-control='Smiling']")
    assert (slider.get_attribute("min"), slider.get_attribute("max")) == ("0", "1")
    driver.execute_script("arguments[0].value = 0.9; arguments[0].dispatchEvent(new Event('input'));"
                          "arguments[0].dispatchEvent(new Event('change'));", slider)
    browser.wait_for(driver, "return document.getElementById('controls-status').textContent.startsWith('identity')", 60)
    engine = steer(sampler, ws, {"Smiling": 0.9})
    smiling = driver.find_element("css selector", "#edit-controls output.read[data-control='Smiling']")
    row = smiling.find_element("xpath", "preceding-sibling::output[1]")
    assert row.text == "0.90"  # requested, beside what the image reads
    assert smiling.text == f"read: {engine.achieved['Smiling']:.2f}" and "met" in smiling.get_attribute("class")
    np.testing.assert_array_equal(shown(driver, "edit-img"), engine.image)
    status = driver.find_element("id", "controls-status").text
    driver.find_element("id", "controls-identity").click()  # keep the person: the same target, searched again
    browser.wait_for(driver, "const s = document.getElementById('controls-status').textContent;"
                             "return s !== arguments[0] && s.startsWith('identity')", 90, status)
    held = steer(sampler, ws, {"Smiling": 0.9}, ["identity"])
    np.testing.assert_array_equal(shown(driver, "edit-img"), held.image)
    assert held.identity_distance <= engine.identity_distance
    driver.find_element("id", "edit-keep").click()
    browser.wait_for(driver, "return studio.state.faces.at(-1).name === 'seed 3 (psi 0.7), Smiling 0.9'", 60)
