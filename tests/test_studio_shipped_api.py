"""The studio on the shipped model, through its HTTP API: a photo's latent from the shipped encoder at once,
pivotal tuning with progress, the tuned face drawn (and edited) by its tuned network, which downloads as a
file any command takes; Edit's controls set a face to values read on its image, and refuse bad ones in
one line."""
from __future__ import annotations

import base64
import io
import json
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from facegen_cli.controls.steer import steer  # noqa: E402
from facegen_cli.encoder.encode import encode  # noqa: E402
from facegen_cli.encoder.store import find_encoder  # noqa: E402
from facegen_cli.estimators.face import read_face  # noqa: E402
from facegen_cli.latent.directions import conditioned, load_direction, move  # noqa: E402
from facegen_cli.latent.sources import read_latent  # noqa: E402
from facegen_cli.networks import load_network  # noqa: E402
from facegen_cli.paths import weights_dir  # noqa: E402
from facegen_cli.sampler import Sampler  # noqa: E402
from facegen_cli.studio import controls as studio_controls  # noqa: E402
from real_faces import CELEBA_IMAGES, FACE_BOX  # noqa: E402
from studio_helpers import needs_real_faces, tiny_studio  # noqa: E402
from test_studio_api import call, ok_json, pixels  # noqa: E402

TAB = "00112233445566778899aabbccddeeff"
PHOTO = "009001.jpg"  # a CelebA photo no shipped network trained on


def photo_png() -> bytes:
    """The photo's classic 64 px face crop: aligned already, at the network's size, so `align none` keeps it."""
    needs_real_faces()
    with Image.open(CELEBA_IMAGES / PHOTO) as im:
        face = im.convert("RGB").crop(FACE_BOX)
    out = io.BytesIO()
    face.save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """(url, net) of a studio on the shipped model."""
    with tiny_studio(tmp_path_factory.mktemp("shipped"), network=weights_dir() / "default.safetensors") as found:
        yield found


def run_job(url: str, query: str, photo: bytes, timeout: float = 120) -> tuple[dict, list[dict]]:
    """The finished job of a projection request, and every status seen while it ran."""
    job = ok_json(f"{url}/api/t/{TAB}/project?{query}", method="POST", body=photo)
    seen, deadline = [job], time.monotonic() + timeout
    while not job["done"] and time.monotonic() < deadline:
        time.sleep(0.05)
        job = ok_json(f"{url}/api/t/{TAB}/project/{job['id']}")
        seen.append(job)
    assert job["done"] and job["error"] is None, job
    return job, seen


def test_the_encoder_gives_the_latent_at_once_then_tuning_reports_progress(shipped, tmp_path):
    url, net = shipped
    assert ok_json(f"{url}/api/info")["encoder"]
    photo = photo_png()
    job, seen = run_job(url, "name=me.png&align=none&perceptual=0&tune=1&tune_steps=3", photo)
    assert job["seconds"]["encoding"] < 1.0  # the shipped encoder: one forward pass
    assert job["steps"] == 0 and job["tune_step"] == job["tune_steps"] == 3
    assert any(s["phase"] == "tuning" and s["face"] for s in seen)  # the encoder's face came before tuning ended
    target = np.asarray(Image.open(io.BytesIO(photo)))
    assert pixels(call(url + job["target"])[2]).tolist() == target.tolist()  # the user's own pixels
    ws, image, _ = encode(net, find_encoder("default", net), target)
    encoded = np.load(io.BytesIO(call(url + job["face"]["npy"])[2]))
    np.testing.assert_array_equal(encoded, ws)
    assert job["face"]["network"] is None and job["tuned"]["network"]
    tuned_ws = np.load(io.BytesIO(call(url + job["tuned"]["npy"])[2]))
    np.testing.assert_array_equal(tuned_ws, ws)  # tuning keeps the latent and changes the network
    quality = job["quality"]
    assert quality["tuned"]["psnr_db"] > quality["latent"]["psnr_db"]
    assert pixels(call(url + job["tuned"]["photo"])[2]).tolist() == target.tolist()

    status, headers, body = call(url + job["tuned"]["network"])
    assert status == 200 and headers["content-disposition"].endswith('.safetensors"')
    (tmp_path / "tuned.safetensors").write_bytes(body)
    tuned = load_network(str(tmp_path / "tuned.safetensors"))  # a file any command takes as --network
    assert tuned.network_id == net.network_id
    drawn = Sampler(tuned).images(ws[None])[0]
    np.testing.assert_array_equal(pixels(call(url + job["tuned"]["image"])[2]), drawn)
    assert np.abs(drawn.astype(int) - Sampler(net).images(ws[None])[0]).mean() > 0.5  # not the base network's face

    smiling = load_direction("Smiling", net)
    payload = {"op": "edit", "face": job["tuned"]["id"], "sliders": {"Smiling": 2.0}, "seq": 1}
    status, _, png = call(f"{url}/api/t/{TAB}/live/edit", method="POST", json_body=payload)
    expected = Sampler(tuned).images(move(ws, conditioned(smiling.vector, []), 2.0, smiling.layers)[None])[0]
    assert status == 200
    np.testing.assert_array_equal(pixels(png), expected)  # an edit of a tuned face draws on its tuned network
    status, _, body = call(f"{url}/api/t/{TAB}/result.safetensors", method="POST", json_body=payload)
    assert status == 200 and body == call(url + job["tuned"]["network"])[2]


def test_bad_projection_requests_are_one_line_4xx(shipped):
    url, _ = shipped
    photo = photo_png()
    for query, fragment in (("method=sgd", "method must be one of encoder, w, wplus"),
                            ("tune=1&tune_steps=0", "tune_steps must lie in 1-1000"),
                            ("method=wplus&tune=1", "not W+"), ("tune_steps=many", "is not a whole number")):
        status, _, body = call(f"{url}/api/t/{TAB}/project?name=me.png&{query}", method="POST", body=photo)
        assert status == 400 and fragment in json.loads(body)["error"], body
    face = ok_json(f"{url}/api/t/{TAB}/faces", method="POST", json_body={"seed": 1})
    status, _, body = call(url + face["image"].replace(".png", ".safetensors"))
    assert status == 404 and "only a tuned face has a network file" in json.loads(body)["error"]



def test_controls_set_a_face_to_values_read_on_the_image(shipped, monkeypatch):
    url, net = shipped
    searches = []
    monkeypatch.setattr(studio_controls, "steer", lambda *a, **k: searches.append(a[2]) or steer(*a, **k))
    fitted = {c["name"]: c for c in ok_json(f"{url}/api/info")["controls"]}
    assert fitted["Age"]["unit"] == "years" and fitted["Yaw"]["unit"] == "degrees"
    assert (fitted["Smiling"]["unit"], fitted["Smiling"]["low"], fitted["Smiling"]["high"]) == ("probability", 0, 1)
    face = ok_json(f"{url}/api/t/{TAB}/faces", method="POST", json_body={"seed": 3, "psi": 0.7})
    sampler = Sampler(net, psi=0.7)
    ws = read_latent(sampler, 3)
    reading = ok_json(f"{url}/api/t/{TAB}/faces/{face['id']}/reading")
    read = read_face(sampler.images(ws[None]))
    assert set(reading) == set(fitted) and reading["Age"] == pytest.approx(float(read["Age"][0]))
    payload = {"face": face["id"], "targets": {"Smiling": 0.9}}
    answer = ok_json(f"{url}/api/t/{TAB}/controls", method="POST", json_body=payload)
    engine = steer(sampler, ws, {"Smiling": 0.9})
    assert answer["requested"] == {"Smiling": 0.9} and answer["achieved"] == engine.summary()["achieved"]
    assert abs(answer["achieved"]["Smiling"] - 0.9) <= 0.15 and answer["identity_distance"] < 0.5
    np.testing.assert_array_equal(pixels(base64.b64decode(answer["image"].split(",", 1)[1])), engine.image)
    kept = ok_json(f"{url}/api/t/{TAB}/keep", method="POST", json_body={"op": "controls", **payload})
    assert kept["name"] == "seed 3 (psi 0.7), Smiling 0.9"
    np.testing.assert_array_equal(np.load(io.BytesIO(call(url + kept["npy"])[2])), engine.ws)
    assert searches == [{"Smiling": 0.9}]  # keeping what the page shows takes the result, not a second search
    assert ok_json(f"{url}/api/info")["keeps_identity"]  # the shipped network has an identity span
    held = ok_json(f"{url}/api/t/{TAB}/controls", method="POST",
                   json_body={"face": face["id"], "targets": {"Yaw": 15.0}, "keep": ["identity"]})
    plain = steer(sampler, ws, {"Yaw": 15.0})
    assert abs(held["achieved"]["Yaw"] - 15) <= 1.0 and held["strengths"]["identity"] >= 0
    assert held["identity_distance"] <= plain.identity_distance and held["renders"] > plain.renders


@pytest.mark.parametrize("body, status, message", [
    ({"targets": {"Age": 500}}, 400, "targets Age=500 is outside 5..90 years"),
    ({"targets": {"Yaw": 170}}, 400, "targets Yaw=170 is outside -45..45 degrees"),
    ({"targets": {"Beauty": 1}}, 400, "unknown control 'Beauty'; the controls are Age, Yaw"),
    ({"targets": {"Age": "old"}}, 400, "'Age' must be a finite number, got \"old\""),
    ({"targets": [60]}, 400, "'targets' must be an object"),
    ({"targets": {}}, 400, "targets: set at least one control"),
    ({"targets": {"Age": 40}, "keep": ["age"]}, 400, "Age is both set and kept"),
    ({"targets": {"Age": 40}, "keep": [3]}, 400, "'keep' lists names of controls or directions, got 3"),
    ({"targets": {"Age": 40}, "face": "0123456789ab"}, 404, "this tab has no face '0123456789ab'"),
])
def test_bad_control_requests_are_one_line_4xx(shipped, body, status, message):
    url, _ = shipped
    face = ok_json(f"{url}/api/t/{TAB}/faces", method="POST", json_body={"seed": 4})
    got, _, answer = call(f"{url}/api/t/{TAB}/controls", method="POST", json_body={"face": face["id"], **body})
    error = json.loads(answer)["error"]
    assert got == status and error.startswith(message) and "\n" not in error, error
