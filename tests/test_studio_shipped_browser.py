"""The studio on the shipped model, clicked through in Debian's headless Chromium: a photo projected by the
shipped encoder and tuned, then edited beside its photo on its tuned network, with its downloads."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from facegen_cli.latent.directions import conditioned, load_direction, move  # noqa: E402
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
