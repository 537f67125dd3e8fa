"""The studio's HTTP API on a tiny network: every page's answer equals the engine's, tabs stay apart,
stale live requests are dropped, uploads are limited and sniffed, and no path leaves the studio."""
from __future__ import annotations

import base64
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from facegen_cli.checkpoint import save_checkpoint  # noqa: E402
from facegen_cli.latent.directions import conditioned, move, sefa_directions  # noqa: E402
from facegen_cli.latent.interpolate import morph_frames  # noqa: E402
from facegen_cli.latent.tuning import TuneOptions  # noqa: E402
from facegen_cli.latent.mixing import style_mix, weighted_average  # noqa: E402
from facegen_cli.latent.sources import read_latent  # noqa: E402
from facegen_cli.models import dcgan, stylegan3  # noqa: E402
from facegen_cli.sampler import Sampler, conditioning, seed_to_z  # noqa: E402
from facegen_cli.specs import parse_attrs  # noqa: E402
from facegen_cli.studio.projection import ProjectRequest  # noqa: E402
from facegen_cli.data.dataset import decode_image  # noqa: E402
from facegen_cli.prepare import align  # noqa: E402
from facegen_cli.prepare.pipeline import PrepareOptions, prepare, process_photo  # noqa: E402
from facegen_cli.studio.service import png as encode_png  # noqa: E402
from studio_helpers import QUIZ_PHOTOS, needs_real_faces, real_faces, tiny_studio  # noqa: E402
from tiny_nets import tiny_checkpoint  # noqa: E402

FACEGEN = [sys.executable, "-c", "from facegen_cli.cli.main import main; main()"]
TAB = "0123456789abcdef"
OTHER = "fedcba9876543210"


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """A studio on a tiny network, served from a thread; yields (url, net, root)."""
    root = tmp_path_factory.mktemp("studio")
    with tiny_studio(root) as (url, net):
        yield url, net, root


def call(url: str, method: str = "GET", body: bytes | None = None, json_body: dict | None = None,
         headers: dict | None = None) -> tuple[int, dict, bytes]:
    """(status, headers, body) of one request."""
    headers = dict(headers or {})
    if json_body is not None:
        body, headers["Content-Type"] = json.dumps(json_body).encode(), "application/json"
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def ok_json(url: str, **kwargs) -> dict:
    status, _, body = call(url, **kwargs)
    assert status == 200, body
    return json.loads(body)


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def open_seed(url: str, tab: str, seed: int, psi: float = 0.7) -> dict:
    return ok_json(f"{url}/api/t/{tab}/faces", method="POST", json_body={"seed": seed, "psi": psi})


def live(url: str, tab: str, channel: str, payload: dict, seq: int) -> tuple[int, bytes]:
    status, _, body = call(f"{url}/api/t/{tab}/live/{channel}", method="POST", json_body={**payload, "seq": seq})
    return status, body


def test_info_describes_the_network(studio):
    url, net, _ = studio
    info = ok_json(f"{url}/api/info")
    assert info["wplus"] and info["resolution"] == 32 and info["num_ws"] == net.G_ema.num_ws
    assert info["layers"] == [4, 4, 8, 8, 16, 16, 32, 32][:net.G_ema.num_ws]
    assert info["groups"]["coarse"] == [0, 1, 2, 3] and info["groups"]["middle"] == [4, 5, 6, 7]
    assert [d["name"] for d in info["directions"]] == [f"sefa-{i:02d}" for i in range(8)]
    assert info["controls"] == [] and not info["encoder"]  # neither is fitted for a tiny network
    # the Project page starts from what `project --tune` runs, and a request without the field gets the same
    assert info["projection"]["tune_steps"] == {"default": TuneOptions().steps, "max": 1000}
    assert ProjectRequest().tune_steps == TuneOptions().steps
    face = open_seed(url, TAB, 0)
    status, _, body = call(f"{url}/api/t/{TAB}/controls", method="POST",
                           json_body={"face": face["id"], "targets": {"Age": 40}})
    assert status == 400 and json.loads(body)["error"].startswith("this network has no direction for control Age")


def test_explore_page_is_generate(studio):
    url, net, _ = studio
    page = ok_json(f"{url}/api/t/{TAB}/explore?start=5&count=3&psi=0.5&noise=const")["faces"]
    expected = list(Sampler(net, psi=0.5).samples([5, 6, 7]))
    assert [f["seed"] for f in page] == [5, 6, 7]
    for face, sample in zip(page, expected):
        png = base64.b64decode(face["image"].split(",", 1)[1])
        np.testing.assert_array_equal(pixels(png), sample.image)


def test_open_face_downloads_png_and_latent(studio):
    url, net, _ = studio
    face = open_seed(url, TAB, 3)
    ws = read_latent(Sampler(net, psi=0.7), 3)
    status, headers, png = call(url + face["image"])
    assert status == 200 and headers["content-type"] == "image/png" and "attachment" in headers["content-disposition"]
    np.testing.assert_array_equal(pixels(png), Sampler(net).images(ws[None])[0])
    status, _, npy = call(url + face["image"].replace(".png", ".npy"))
    np.testing.assert_array_equal(np.load(io.BytesIO(npy)), ws)


def test_edit_mix_and_average_match_the_engine(studio):
    url, net, _ = studio
    a, b = open_seed(url, TAB, 1), open_seed(url, TAB, 2)
    seeded = Sampler(net, psi=0.7)
    wa, wb = read_latent(seeded, 1), read_latent(seeded, 2)
    sefa = {d.name: d for d in sefa_directions(net, 8)}
    payload = {"op": "edit", "face": a["id"], "sliders": {"sefa-00": 2.5, "sefa-03": -1.0}, "fixed": ["sefa-01"]}
    status, png = live(url, TAB, "edit", payload, 1)
    edited = move(wa, conditioned(sefa["sefa-00"].vector, [sefa["sefa-01"].vector]), 2.5)
    edited = move(edited, conditioned(sefa["sefa-03"].vector, [sefa["sefa-01"].vector]), -1.0)
    assert status == 200
    np.testing.assert_array_equal(pixels(png), Sampler(net).images(edited[None])[0])
    status, png = live(url, TAB, "mix", {"op": "mix", "a": a["id"], "b": b["id"], "layers": "coarse"}, 1)
    np.testing.assert_array_equal(pixels(png), Sampler(net).images(style_mix(wa, wb, [0, 1, 2, 3])[None])[0])
    status, png = live(url, TAB, "average", {"op": "average", "faces": [a["id"], b["id"]], "weights": [1, 3]}, 1)
    mean = weighted_average(np.stack([wa, wb]), np.array([0.25, 0.75]))
    np.testing.assert_array_equal(pixels(png), Sampler(net).images(mean[None])[0])
    kept = ok_json(f"{url}/api/t/{TAB}/keep", method="POST", json_body=payload)
    np.testing.assert_array_equal(np.load(io.BytesIO(call(url + kept["image"].replace(".png", ".npy"))[2])), edited)


def test_stale_live_requests_are_dropped(studio):
    url, _, _ = studio
    face = open_seed(url, OTHER, 4)
    payload = {"op": "edit", "face": face["id"], "sliders": {"sefa-02": 1.0}}
    before = ok_json(f"{url}/api/t/{OTHER}/stats")
    assert live(url, OTHER, "edit", payload, 10)[0] == 200
    status, body = live(url, OTHER, "edit", payload, 9)  # older than the newest request seen
    assert status == 204 and body == b""
    after = ok_json(f"{url}/api/t/{OTHER}/stats")
    assert after["dropped"] == before["dropped"] + 1 and after["renders"] == before["renders"] + 1
    assert live(url, TAB, "edit", payload | {"face": open_seed(url, TAB, 4)["id"]}, 9)[0] == 200  # tabs apart


def test_tabs_do_not_see_each_others_faces(studio):
    url, _, _ = studio
    face = open_seed(url, TAB, 8)
    ids = [f["id"] for f in ok_json(f"{url}/api/t/{OTHER}/faces")["faces"]]
    assert face["id"] not in ids
    status, _, body = call(url + face["image"].replace(TAB, OTHER))
    assert status == 404 and b"has no face" in body
    assert call(f"{url}/api/t/not-a-tab/faces")[0] == 400


def test_uploads_are_sniffed_limited_and_read_like_the_cli(studio):
    url, net, root = studio
    ws = read_latent(Sampler(net, psi=1.0), 9)
    buf = io.BytesIO()
    np.save(buf, ws)
    face = ok_json(f"{url}/api/t/{TAB}/faces/upload?name=../../evil.npy", method="POST", body=buf.getvalue())
    assert face["name"] == "evil.npy"
    np.testing.assert_array_equal(pixels(call(url + face["image"])[2]), Sampler(net).images(ws[None])[0])
    assert not (root / "evil.npy").exists() and not (root.parent / "evil.npy").exists()
    status, _, body = call(f"{url}/api/t/{TAB}/faces/upload?name=notes.npy", method="POST", body=b"hello, world")
    assert status == 400 and json.loads(body)["error"] == "notes.npy: not a latent (.npy or .npz) by its content"
    buf = io.BytesIO()
    np.save(buf, np.zeros([3, 5], np.float32))
    status, _, body = call(f"{url}/api/t/{TAB}/faces/upload?name=small.npy", method="POST", body=buf.getvalue())
    assert status == 422 and json.loads(body)["error"].startswith("small.npy: latent of shape (3, 5) does not fit")
    status, _, body = call(f"{url}/api/t/{TAB}/faces/upload?name=big.npy", method="POST", body=b"\x93NUMPY" * 800_000)
    assert status == 413 and "limit" in json.loads(body)["error"]
    npz = io.BytesIO()
    np.savez(npz, w=ws[None])  # NVIDIA's projector writes W this way
    face = ok_json(f"{url}/api/t/{TAB}/faces/upload?name=projected.npz", method="POST", body=npz.getvalue())
    np.testing.assert_array_equal(np.load(io.BytesIO(call(url + face["image"].replace(".png", ".npy"))[2])), ws)
    bomb = io.BytesIO()
    np.savez_compressed(bomb, w=np.zeros(5_000_000, np.float32))  # a few KiB that unpack to 20 MB
    status, _, body = call(f"{url}/api/t/{TAB}/faces/upload?name=bomb.npz", method="POST", body=bomb.getvalue())
    assert status == 413 and json.loads(body)["error"] == "bomb.npz: unpacks to 19.1 MiB, over the 16 MiB limit"
    assert not list((root / "tmp").glob("*/*/upload-*"))  # uploads are not kept


@pytest.mark.parametrize("path", [
    "/static/../../pyproject.toml", "/static/..%2f..%2fpyproject.toml", "/static/%2e%2e/app.py",
    "/static/..%2fapp.py", f"/api/t/{TAB}/morph/..%2f..%2f..%2fetc%2fpasswd.gif",
    f"/api/t/{TAB}/faces/..%2f..%2fapp.png", "/api/t/..%2f..%2fetc/faces", "/../../../etc/passwd",
])
def test_no_path_reaches_files_outside_the_studio(studio, path):
    url, _, _ = studio
    host = url.split("//", 1)[1]
    conn = http.client.HTTPConnection(host, timeout=30)
    conn.request("GET", path)  # sent as written: http.client does not normalise the path
    response = conn.getresponse()
    body = response.read()
    assert 400 <= response.status < 500, (path, response.status)
    assert b"[project]" not in body and b"root:" not in body and b"import" not in body


def test_foreign_host_header_is_refused(studio):
    url, _, _ = studio
    assert call(f"{url}/api/info", headers={"Host": "evil.example"})[0] == 400


def test_morph_writes_h264_and_gif_of_the_engine_frames(studio, tmp_path):
    url, net, _ = studio
    a, b = open_seed(url, TAB, 11), open_seed(url, TAB, 12)
    made = ok_json(f"{url}/api/t/{TAB}/morph", method="POST", json_body={"faces": [a["id"], b["id"]], "frames": 6})
    mp4 = tmp_path / "m.mp4"
    mp4.write_bytes(call(url + made["mp4"])[2])
    reader = imageio_ffmpeg.read_frames(str(mp4))
    meta = next(reader)
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p") and sum(1 for _ in reader) == 6
    gif = Image.open(io.BytesIO(call(url + made["gif"])[2]))
    seeded = Sampler(net, psi=0.7)
    keys = np.stack([read_latent(seeded, 11), read_latent(seeded, 12)])
    expected = morph_frames(Sampler(net), keys, 6, False, "w")
    assert gif.n_frames == 6
    gif.seek(5)
    assert np.abs(np.asarray(gif.convert("RGB")).astype(int) - expected[5]).mean() < 12  # GIF palette
    status, _, body = call(f"{url}/api/t/{TAB}/morph", method="POST", json_body={"faces": [a["id"]], "frames": 6})
    assert status == 400 and json.loads(body)["error"] == "add at least two faces to morph between: tick them in the list"


def png_chunks(png: bytes) -> list[str]:
    """The chunk types of a PNG, in order (IHDR, IDAT..., IEND): any metadata would show here."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = [], 8
    while at < len(png):
        length = int.from_bytes(png[at:at + 4], "big")
        chunks.append(png[at + 4:at + 8].decode("ascii"))
        at += 12 + length
    return chunks


def png_form(png: bytes) -> tuple:
    """Everything about a PNG but its pixels' content: size, mode, bit depth and colour type, chunk list."""
    return Image.open(io.BytesIO(png)).size, Image.open(io.BytesIO(png)).mode, png[24:29], tuple(png_chunks(png))


def test_quiz_scores_a_known_answer_sheet_and_exports_csv(studio):
    needs_real_faces()
    url, net, root = studio
    quiz = ok_json(f"{url}/api/t/{TAB}/quiz", method="POST", json_body={"rounds": 6, "psi": 0.7})
    assert quiz["count"] == 6
    info = ok_json(f"{url}/api/info")  # three photos; dlib finds no face in 009003.jpg, so two real faces
    assert info["quiz"] and info["real_images"] == 3 and info["real_skipped"] == 1
    early = ok_json(f"{url}/api/t/{TAB}/quiz/{quiz['id']}/result")
    assert early["answered"] == 0 and {it["truth"] for it in early["items"]} == {None}  # no peeking
    # each real face is the photo as `prepare` aligns it for the training set, at the network's 32 px
    aligned = {encode_png(decode_image(process_photo(root / "real" / name, PrepareOptions(size=32)).samples[0][0]))
               for name in QUIZ_PHOTOS[:2]}
    served = []
    for i, image in enumerate(quiz["images"]):
        served.append(call(url + image)[2])
        ok_json(f"{url}/api/t/{TAB}/quiz/{quiz['id']}/answer", method="POST",
                json_body={"index": i, "answer": "real", "ms": 100 + i})
    assert aligned <= set(served) and {png_form(png) for png in served} == {png_form(next(iter(aligned)))}
    result = ok_json(f"{url}/api/t/{TAB}/quiz/{quiz['id']}/result")
    assert result["score"] == 2 and result["answered"] == 6  # the two real faces, as everything was called real
    assert sorted(it["truth"] for it in result["items"]) == ["generated"] * 4 + ["real"] * 2
    assert len(result["hardest"]) == 4 and all(it["truth"] == "generated" for it in result["hardest"])
    again = call(f"{url}/api/t/{TAB}/quiz/{quiz['id']}/answer", method="POST", json_body={"index": 0, "answer": "real"})
    assert again[0] == 400 and b"already answered" in again[2]
    rows = call(f"{url}/api/quiz/answers.csv")[2].decode().splitlines()
    assert rows[0] == "participant,quiz,round,image,truth,answer,correct,ms,time"
    mine = [r.split(",") for r in rows[1:] if r.split(",")[1] == quiz["id"]]
    assert len(mine) == 6 and sum(int(r[6]) for r in mine) == 2 and {r[5] for r in mine} == {"real"}
    assert {r[3] for r in mine if r[4] == "real"} == {f"real:{name}" for name in QUIZ_PHOTOS[:2]}
    assert all(r[3].startswith("seed:") and r[3].endswith(" psi:0.7") for r in mine if r[4] == "generated")
    stats = ok_json(f"{url}/api/quiz/stats")  # per-image accuracy, for the model card
    assert stats["by_truth"]["real"]["accuracy"] == 1.0 and stats["by_truth"]["generated"]["accuracy"] == 0.0
    images = {it["image"]: it for it in stats["images"]}
    assert {r[3] for r in mine} <= set(images) and images["real:009001.jpg"]["truth"] == "real"
    assert all(images[r[3]]["accuracy"] == images[r[3]]["correct"] / images[r[3]]["answers"] for r in mine)


def test_quiz_shows_real_faces_exactly_as_generated_ones(tmp_path):
    """A prepared dataset at the network's size reaches the page as its PNGs re-encoded by the function that
    encodes the generated faces, and equal to what the quiz makes of the raw photos; at another size it is
    resampled as prepare resamples. Both sides: same headers, size, mode, bit depth and PNG chunks."""
    needs_real_faces()
    raw = real_faces(tmp_path / "raw")
    prepare(raw, tmp_path / "faces64.zip", PrepareOptions(size=64), workers=1)
    with zipfile.ZipFile(tmp_path / "faces64.zip") as z:
        prepared = [z.read(n) for n in sorted(z.namelist()) if n.endswith(".png")]
    assert len(prepared) == 2  # no face in the third photo
    net64 = tiny_checkpoint(tmp_path / "tiny64.safetensors", img_resolution=64)
    with tiny_studio(tmp_path / "prepared", net64, tmp_path / "faces64.zip") as (url, _):
        quiz = ok_json(f"{url}/api/t/{TAB}/quiz", method="POST", json_body={"rounds": 4, "psi": 0.7})
        served = [call(url + image) for image in quiz["images"]]
        truths = {it["index"]: it["truth"] for it in answer_all(url, quiz)}
    reals = [body for i, (_, _, body) in enumerate(served) if truths[i] == "real"]
    assert sorted(reals) == sorted(encode_png(decode_image(png)) for png in prepared)
    assert len({png_form(body) for _, _, body in served}) == 1
    assert png_chunks(reals[0]) == ["IHDR", "IDAT", "IEND"] and png_form(reals[0])[:2] == ((64, 64), "RGB")
    assert len({tuple(sorted((k, v) for k, v in headers.items() if k not in ("content-length", "date")))
                for status, headers, _ in served}) == 1
    with tiny_studio(tmp_path / "raw64", net64, raw) as (url, _):  # the photos themselves, aligned by the quiz
        quiz = ok_json(f"{url}/api/t/{TAB}/quiz", method="POST", json_body={"rounds": 4, "psi": 0.7})
        truths = {it["index"]: it["truth"] for it in answer_all(url, quiz)}
        assert sorted(call(url + image)[2] for i, image in enumerate(quiz["images"]) if truths[i] == "real") == \
            sorted(reals)
    with tiny_studio(tmp_path / "resampled", None, tmp_path / "faces64.zip") as (url, _):  # 64 px faces, 32 px net
        quiz = ok_json(f"{url}/api/t/{TAB}/quiz", method="POST", json_body={"rounds": 4, "psi": 0.7})
        truths = {it["index"]: it["truth"] for it in answer_all(url, quiz)}
        shown = sorted(call(url + image)[2] for i, image in enumerate(quiz["images"]) if truths[i] == "real")
    expected = [encode_png(align.crop(rgb, (0, 0, 64, 64), 32)) for rgb in map(decode_image, prepared)]
    assert shown == sorted(expected)


def answer_all(url: str, quiz: dict) -> list[dict]:
    """Answer every image of a quiz 'real'; returns the result's items (truths shown once answered)."""
    for i in range(quiz["count"]):
        ok_json(f"{url}/api/t/{TAB}/quiz/{quiz['id']}/answer", method="POST", json_body={"index": i, "answer": "real"})
    return ok_json(f"{url}/api/t/{TAB}/quiz/{quiz['id']}/result")["items"]


def test_projection_runs_in_the_background_and_adds_a_face(studio):
    url, _, _ = studio
    photo = io.BytesIO()
    Image.new("RGB", (48, 48), (120, 90, 60)).save(photo, "PNG")
    query = "name=me.png&steps=4&align=none&perceptual=0"
    job = ok_json(f"{url}/api/t/{TAB}/project?{query}", method="POST", body=photo.getvalue())
    deadline = time.monotonic() + 60
    while not job["done"] and time.monotonic() < deadline:
        time.sleep(0.1)
        job = ok_json(f"{url}/api/t/{TAB}/project/{job['id']}")
    assert job["done"] and job["error"] is None and job["step"] == 4 and job["quality"]["latent"]["psnr_db"] > 0
    assert job["face"]["name"] == "projected me.png"
    assert pixels(call(url + job["target"])[2]).tolist() == [[[120, 90, 60]] * 32] * 32
    status, _, body = call(f"{url}/api/t/{TAB}/project?name=cv.pdf", method="POST", body=b"%PDF-1.4 not a photo")
    assert status == 400 and json.loads(body)["error"] == "cv.pdf: not a photo (JPEG, PNG, WebP or BMP) by its content"


def test_errors_are_one_json_line(studio):
    url, _, _ = studio
    status, _, body = call(f"{url}/api/t/{TAB}/explore?psi=7")
    assert status == 400 and json.loads(body) == {"error": "psi 7.0 is outside [-2, 2]"}  # the query field's name
    status, _, body = call(f"{url}/api/t/{TAB}/live/edit", method="POST", body=b"{not json")
    assert status == 400 and json.loads(body) == {"error": "the request body is not JSON"}


def test_cli_without_the_extra_says_how_to_get_it(monkeypatch):
    from typer.testing import CliRunner

    from facegen_cli.cli.main import app

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if the extra were not installed
    result = CliRunner().invoke(app, ["studio"])
    assert result.exit_code == 1
    assert result.stderr.strip() == \
        "facegen: error: facegen studio needs its web extra: pip install 'facegen-cli[studio]'"


def test_ctrl_c_stops_the_server_cleanly(tmp_path):
    net = tiny_checkpoint(tmp_path / "tiny.safetensors")
    env = {**os.environ, "TMPDIR": str(tmp_path), "FACEGEN_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen([*FACEGEN, "studio", "--network", str(net), "--port", "0", "--state", str(tmp_path / "kept")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert ok_json(f"{url}api/info")["resolution"] == 32
        open_seed(url.rstrip("/"), TAB, 1)
        assert list(tmp_path.glob("facegen-studio-*"))
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    assert "Traceback" not in proc.stderr.read()
    assert not list(tmp_path.glob("facegen-studio-*"))  # its working files are gone
    assert [p.name for p in (tmp_path / "kept").iterdir()] == [f"faces-{TAB}.npz"]  # the faces are not


@pytest.fixture(scope="module")
def z_studio(tmp_path_factory):
    """A studio on a tiny conditional DCGAN (cGAN): z latents, two named attributes, no W+."""
    root = tmp_path_factory.mktemp("z_studio")
    torch.manual_seed(0)
    kwargs = dict(z_dim=16, c_dim=2, img_resolution=32, width=8)
    path = save_checkpoint(root / "cgan.safetensors", "cgan", kwargs, dcgan.Generator(**kwargs).eval(),
                           provenance={"label_names": ["Smiling", "Male"], "label_means": [0.5, 0.25]})
    with tiny_studio(root, path) as (url, net):
        yield url, net


def test_z_only_family_explores_averages_and_morphs(z_studio):
    url, net = z_studio
    info = ok_json(f"{url}/api/info")
    assert not info["wplus"] and info["directions"] == [] and info["label_names"] == ["Smiling", "Male"]
    page = ok_json(f"{url}/api/t/{TAB}/explore?start=0&count=2&psi=0.8&attrs=Smiling%3D1")["faces"]
    c = conditioning(net, attrs=parse_attrs("Smiling=1"))
    np.testing.assert_array_equal(c, [1.0, 0.25])
    expected = list(Sampler(net, psi=0.8, label=c).samples([0, 1]))
    for face, sample in zip(page, expected):
        np.testing.assert_array_equal(pixels(base64.b64decode(face["image"].split(",", 1)[1])), sample.image)
    a = ok_json(f"{url}/api/t/{TAB}/faces", method="POST", json_body={"seed": 0, "psi": 0.8, "attrs": "Smiling=1"})
    b = ok_json(f"{url}/api/t/{TAB}/faces", method="POST", json_body={"seed": 1, "psi": 0.8, "attrs": "Smiling=1"})
    np.testing.assert_array_equal(np.load(io.BytesIO(call(url + a["image"].replace(".png", ".npy"))[2])),
                                  seed_to_z(0, 16).astype(np.float32))
    status, png = live(url, TAB, "average", {"op": "average", "faces": [a["id"], b["id"]], "weights": [1, 1]}, 1)
    mean = weighted_average(np.stack([seed_to_z(0, 16), seed_to_z(1, 16)]).astype(np.float32), np.array([0.5, 0.5]))
    np.testing.assert_array_equal(pixels(png), Sampler(net, psi=0.8, label=c).images(mean[None])[0])
    made = ok_json(f"{url}/api/t/{TAB}/morph", method="POST", json_body={"faces": [a["id"], b["id"]], "frames": 4})
    assert Image.open(io.BytesIO(call(url + made["gif"])[2])).n_frames == 4
    status, png = live(url, TAB, "mix", {"op": "mix", "a": a["id"], "b": b["id"], "layers": "0"}, 2)
    assert status == 400 and json.loads(png)["error"] == "style mixing needs a W+ model (StyleGAN2); cgan has only z"
    status, _, body = call(f"{url}/api/t/{TAB}/project?name=p.png", method="POST", body=b"\x89PNG\r\n\x1a\n....")
    assert status == 400 and json.loads(body)["error"] == "projection needs a W+ model (StyleGAN2); cgan has only z"


def sg3_checkpoint(root):
    """A tiny random StyleGAN3 checkpoint under `root`."""
    torch.manual_seed(0)
    kwargs = dict(z_dim=16, w_dim=16, img_resolution=16, img_channels=3, channel_base=256, channel_max=32,
                  num_layers=6)
    return save_checkpoint(root / "sg3.safetensors", "stylegan3", kwargs, stylegan3.Generator(**kwargs).eval())


def test_stylegan3_explores_mixes_and_morphs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sg3_studio")
    with tiny_studio(root, sg3_checkpoint(root)) as (url, net):
        info = ok_json(f"{url}/api/info")
        assert info["architecture"] == "stylegan3" and info["wplus"] and info["num_ws"] == net.G_ema.num_ws
        page = ok_json(f"{url}/api/t/{TAB}/explore?start=0&count=2&psi=0.7")["faces"]
        sample = next(Sampler(net, psi=0.7).samples([0]))
        np.testing.assert_array_equal(pixels(base64.b64decode(page[0]["image"].split(",", 1)[1])), sample.image)
        a, b = open_seed(url, TAB, 0), open_seed(url, TAB, 1)
        seeded = Sampler(net, psi=0.7)
        wa, wb = read_latent(seeded, 0), read_latent(seeded, 1)
        status, png = live(url, TAB, "mix", {"op": "mix", "a": a["id"], "b": b["id"], "layers": "0-3"}, 1)
        np.testing.assert_array_equal(pixels(png), Sampler(net).images(style_mix(wa, wb, [0, 1, 2, 3])[None])[0])
        made = ok_json(f"{url}/api/t/{TAB}/morph", method="POST", json_body={"faces": [a["id"], b["id"]], "frames": 3})
        assert Image.open(io.BytesIO(call(url + made["gif"])[2])).n_frames == 3


def test_bind_refuses_a_busy_port_and_a_foreign_address():
    from facegen_cli.errors import BadInput, FacegenError
    from facegen_cli.studio.server import bind

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        with pytest.raises(FacegenError, match=r"Address already in use\); try another --port"):
            bind("127.0.0.1", busy.getsockname()[1])
    finally:
        busy.close()
    with pytest.raises(BadInput, match="--port 70000 is outside 0-65535"):
        bind("127.0.0.1", 70000)
    sock, url = bind("127.0.0.1", 0)
    sock.close()
    assert url.startswith("http://127.0.0.1:") and url.endswith("/")


def test_every_json_body_is_bounded_before_parsing(studio):
    url, _, _ = studio
    face = open_seed(url, TAB, 8)
    routes = [f"{url}/api/t/{TAB}/faces", f"{url}/api/t/{TAB}/live/edit", f"{url}/api/t/{TAB}/keep",
              f"{url}/api/t/{TAB}/morph", f"{url}/api/t/{TAB}/result.npy", f"{url}/api/t/{TAB}/quiz"]
    for route in routes:
        status, _, body = call(route, method="POST", body=b"[" * 100_000)  # the 100,000-deep body: over the size
        assert status == 413 and "over the 64 KiB limit" in json.loads(body)["error"], route
        status, _, body = call(route, method="POST", body=b"[" * 20_000 + b"]" * 20_000)  # deep, within the size
        assert status == 400 and json.loads(body) == {"error": "the request body nests deeper than 16 levels"}
        status, _, body = call(route, method="POST", body=b'{"a": ' * 5_000 + b"1" + b"}" * 5_000)
        assert status == 400, route
    brackets_in_a_string = {"op": "edit", "face": face["id"], "sliders": {}, "seq": time.time_ns(), "note": "[" * 1000}
    assert call(f"{url}/api/t/{TAB}/live/edit", method="POST", json_body=brackets_in_a_string)[0] == 200
    for body in (b"\xff\xfe not utf-8", b'{"seed": 1e999999}', b'{"seed": ' + b"9" * 5000 + b"}", b"NaN"):
        status, _, answer = call(f"{url}/api/t/{TAB}/faces", method="POST", body=body)
        assert 400 <= status < 500 and "error" in json.loads(answer), body[:20]


def test_edit_strength_outside_the_engine_range_is_refused(studio):
    url, _, _ = studio
    face = open_seed(url, TAB, 9)
    for strength in (1e308, -101):
        payload = {"op": "edit", "face": face["id"], "sliders": {"sefa-00": strength}}
        status, body = live(url, TAB, "edit", payload, time.time_ns())
        assert status == 400 and f"sefa-00 strength {strength:g} is outside -100..100" in json.loads(body)["error"]
        status, _, body = call(f"{url}/api/t/{TAB}/keep", method="POST", json_body=payload)
        assert status == 400 and "-100..100" in json.loads(body)["error"]
    assert live(url, TAB, "edit", {"op": "edit", "face": face["id"], "sliders": {"sefa-00": 4.5}}, time.time_ns())[0] == 200


def test_a_body_shorter_than_its_length_times_out(studio, monkeypatch):
    from facegen_cli.studio import web

    url, _, _ = studio
    monkeypatch.setattr(web, "BODY_TIMEOUT", 1.0)
    host, port = url.removeprefix("http://").split(":")
    for path in (f"/api/t/{TAB}/faces", f"/api/t/{TAB}/faces/upload?name=x.npy"):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         f"Content-Length: 100\r\n\r\n{{\"seed\": 1".encode())
            started, answer = time.monotonic(), b""
            while chunk := sock.recv(65536):  # the server answers, then closes the connection
                answer += chunk
            assert time.monotonic() - started < 5
            answer = answer.decode()
        assert answer.startswith("HTTP/1.1 408 ") and "did not arrive within 1 s" in answer, answer


def test_edited_mixed_averaged_and_uploaded_faces_download(studio):
    url, net, _ = studio
    a, b = open_seed(url, TAB, 10), open_seed(url, TAB, 11)
    assert a["npy"] == a["image"].replace(".png", ".npy")
    seeded = Sampler(net, psi=0.7)
    wa, wb = read_latent(seeded, 10), read_latent(seeded, 11)
    direction = {d.name: d for d in sefa_directions(net, 8)}["sefa-02"]
    edit = {"op": "edit", "face": a["id"], "sliders": {"sefa-02": -1.5}}
    cases = [(edit, move(wa, conditioned(direction.vector, []), -1.5)),
             ({"op": "mix", "a": a["id"], "b": b["id"], "layers": "0-3"}, style_mix(wa, wb, [0, 1, 2, 3])),
             ({"op": "average", "faces": [a["id"], b["id"]], "weights": [1, 3]},
              weighted_average(np.stack([wa, wb]), np.array([0.25, 0.75])))]
    for payload, latent in cases:
        status, headers, npy = call(f"{url}/api/t/{TAB}/result.npy", method="POST", json_body=payload)
        assert status == 200 and "attachment" in headers["content-disposition"]
        np.testing.assert_allclose(np.load(io.BytesIO(npy)), latent, atol=1e-6)  # what the page shows, not kept
        expected = seeded.images(np.load(io.BytesIO(npy))[None])[0]
        np.testing.assert_array_equal(pixels(call(f"{url}/api/t/{TAB}/result.png", method="POST",
                                                  json_body=payload)[2]), expected)
        kept = ok_json(f"{url}/api/t/{TAB}/keep", method="POST", json_body=payload)
        np.testing.assert_array_equal(np.load(io.BytesIO(call(url + kept["npy"])[2])), np.load(io.BytesIO(npy)))
        np.testing.assert_array_equal(pixels(call(url + kept["image"])[2]), expected)
    buf = io.BytesIO()
    np.save(buf, wb)
    uploaded = ok_json(f"{url}/api/t/{TAB}/faces/upload?name=mine.npy", method="POST", body=buf.getvalue())
    status, headers, npy = call(url + uploaded["npy"])
    assert status == 200 and headers["content-disposition"] == 'attachment; filename="mine.npy.npy"'
    np.testing.assert_array_equal(np.load(io.BytesIO(npy)), wb)


def test_cutoff_and_the_input_transform_draw_as_the_sampler(studio, tmp_path_factory):
    url, net, _ = studio
    page = ok_json(f"{url}/api/t/{TAB}/explore?start=2&count=1&psi=0.5&cutoff=2")["faces"]
    cut = Sampler(net, psi=0.5, cutoff=2)
    np.testing.assert_array_equal(pixels(base64.b64decode(page[0]["image"].split(",", 1)[1])),
                                  next(cut.samples([2])).image)
    face = ok_json(f"{url}/api/t/{TAB}/faces", method="POST", json_body={"seed": 2, "psi": 0.5, "cutoff": 2})
    assert face["name"] == "seed 2 (psi 0.5, cutoff 2)"
    np.testing.assert_array_equal(np.load(io.BytesIO(call(url + face["npy"])[2])), read_latent(cut, 2))
    assert not ok_json(f"{url}/api/info")["transform"]
    status, _, body = call(f"{url}/api/t/{TAB}/explore?start=0&count=1&tx=0.2")
    assert status == 400 and "translate and rotate need a StyleGAN3 network" in json.loads(body)["error"]
    status, _, body = call(f"{url}/api/t/{TAB}/explore?start=0&count=1&cutoff=99")
    assert status == 400 and "cutoff 99 is outside 0-8" in json.loads(body)["error"]
    root = tmp_path_factory.mktemp("sg3_transform")
    with tiny_studio(root, sg3_checkpoint(root)) as (sg3_url, sg3):
        assert ok_json(f"{sg3_url}/api/info")["transform"]
        moved = Sampler(sg3, psi=0.7, translate=(0.25, -0.1), rotate=30.0)
        page = ok_json(f"{sg3_url}/api/t/{TAB}/explore?start=4&count=1&psi=0.7&tx=0.25&ty=-0.1&rotate=30")["faces"]
        np.testing.assert_array_equal(pixels(base64.b64decode(page[0]["image"].split(",", 1)[1])),
                                      next(moved.samples([4])).image)
        face = ok_json(f"{sg3_url}/api/t/{TAB}/faces", method="POST",
                       json_body={"seed": 4, "psi": 0.7, "tx": 0.25, "ty": -0.1, "rotate": 30})
        assert face["name"] == "seed 4 (psi 0.7, moved 0.25,-0.1, turned 30°)"
        np.testing.assert_array_equal(pixels(call(sg3_url + face["image"])[2]), next(moved.samples([4])).image)
        status, png = live(sg3_url, TAB, "edit", {"op": "edit", "face": face["id"], "sliders": {}}, time.time_ns())
        np.testing.assert_array_equal(pixels(png), next(moved.samples([4])).image)  # edits keep the transform


def test_sefa_sliders_are_labelled_by_rank_and_strength(studio):
    url, net, _ = studio
    values = {d.name: d.info["eigenvalue"] for d in sefa_directions(net, 8)}
    directions = ok_json(f"{url}/api/info")["directions"]
    assert directions[0]["label"] == f"SeFa 1 (σ={values['sefa-00'] ** 0.5:.3g})"
    assert [d["label"].split(" (")[0] for d in directions] == [f"SeFa {i}" for i in range(1, 9)]
    assert all("without labels" in d["title"] for d in directions)


def test_seeds_outside_the_range_are_refused(studio):
    url, _, _ = studio
    for seed in (-5, 2 ** 32):
        status, _, body = call(f"{url}/api/t/{TAB}/faces", method="POST", json_body={"seed": seed})
        assert status == 400 and json.loads(body) == {"error": f"seed {seed} is outside 0-4294967295"}


def test_faces_survive_a_restart_and_a_damaged_state_file_does_not(tmp_path, caplog):
    state = tmp_path / "state"
    with tiny_studio(tmp_path, state=state) as (url, net):
        a, b = open_seed(url, TAB, 1), open_seed(url, TAB, 2)
        kept = ok_json(f"{url}/api/t/{TAB}/keep", method="POST",
                       json_body={"op": "mix", "a": a["id"], "b": b["id"], "layers": "0-1"})
        before = {f["id"]: (call(url + f["image"])[2], call(url + f["npy"])[2]) for f in (a, b, kept)}
        open_seed(url, OTHER, 3)
    assert sorted(p.name for p in state.iterdir()) == sorted([f"faces-{OTHER}.npz", f"faces-{TAB}.npz"])
    (state / f"faces-{OTHER}.npz").write_bytes(b"PK\x03\x04 a damaged file")
    with tiny_studio(tmp_path, state=state) as (url, net):
        faces = ok_json(f"{url}/api/t/{TAB}/faces")["faces"]
        assert [f["id"] for f in faces] == [a["id"], b["id"], kept["id"]]
        assert faces[2]["name"] == kept["name"]
        for f in faces:
            assert (call(url + f["image"])[2], call(url + f["npy"])[2]) == before[f["id"]]
        live_png = live(url, TAB, "edit", {"op": "edit", "face": kept["id"], "sliders": {}}, 1)[1]
        assert live_png == before[kept["id"]][0]  # usable, not only shown
        assert ok_json(f"{url}/api/t/{OTHER}/faces")["faces"] == []  # a damaged file: an empty tray, no crash
        assert open_seed(url, OTHER, 4)["name"] == "seed 4 (psi 0.7)"
    assert f"faces-{OTHER}.npz: cannot read the saved faces" in caplog.text
    assert (state / f"faces-{OTHER}.corrupt").exists()
