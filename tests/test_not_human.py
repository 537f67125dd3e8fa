"""A photo whose detected face is not a human's (a dog's, which dlib's HOG detector takes for a face) is
refused wherever a user's photo is aligned; real faces pass the same check."""
from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from facegen_cli.cli.main import app
from facegen_cli.errors import FacegenError
from facegen_cli.latent.project import align_photo
from facegen_cli.paths import weights_dir
from facegen_cli.prepare.detect import detect_faces, load_photo, pick_faces
from facegen_cli.prepare.human import check_human, human_score
from real_faces import CELEBA_IMAGES, SHARED_DATA
from studio_helpers import tiny_studio
from tiny_nets import tiny_checkpoint

DOG = Path(__file__).parent / "data" / "dogs.jpg"  # a crop of dlib's examples/faces/dogs.jpg (data/NOTICE.md)
# Real photos of each kind in the shared data (CelebA, UTKFace from a child to a 99-year-old, a wild photo);
# the benchmark measures over a thousand more.
HUMANS = [CELEBA_IMAGES / "009001.jpg", CELEBA_IMAGES / "000049.jpg",
          SHARED_DATA / "utkface" / "images" / "9_1_4_20170103213057382.jpg.chip.jpg",
          SHARED_DATA / "utkface" / "images" / "99_0_0_20170117195137161.jpg.chip.jpg",
          SHARED_DATA / "wild" / "deepface" / "img1.jpg"]
# On every face measured by benchmarks/face_check.py the human detector's confidence is about 1 (RESULTS.md);
# a real face scoring under half that would be a change of the check, not of the photo.
HUMAN_FLOOR = 0.5


@pytest.fixture(scope="module")
def net(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("net") / "net.safetensors")


def _refused(args: list[str]) -> str:
    """The one error line of a run that must fail with exit 1 and print nothing on stdout."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    lines = result.stderr.splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and result.stdout == "", (result.exit_code, result.stderr)
    return lines[0]


def test_the_detector_takes_the_dog_for_a_face_and_the_check_does_not():
    rgb = load_photo(DOG)
    faces = pick_faces(detect_faces(rgb), max_faces=1)
    assert faces, "dlib's HOG detector no longer fires on the dog: the fixture tests nothing"
    assert human_score(rgb, faces[0].box) == 0
    with pytest.raises(FacegenError, match=f"^{DOG}: the face found is not a human face"):
        check_human(rgb, faces[0].box, str(DOG))


@pytest.mark.parametrize("extra", [[], ["--tune", "--tune-steps", "1"]], ids=["project", "tune"])
def test_project_refuses_a_dog_in_one_line_and_writes_nothing(net, tmp_path, extra):
    out = tmp_path / "out"
    line = _refused(["project", DOG, "-n", net, "--steps", "1", *extra, "-o", out])
    assert line == (f"facegen: error: {DOG}: the face found is not a human face (dlib's human face detector "
                    "does not confirm it); give a photo of a person")
    assert not out.exists()


@pytest.mark.skipif(not (weights_dir() / "default.safetensors").is_file(), reason="the shipped model is absent")
def test_the_encoder_refuses_a_dog_too(tmp_path):
    line = _refused(["project", DOG, "--encoder", "default", "-o", tmp_path / "out"])
    assert "not a human face" in line and not (tmp_path / "out").exists()


def test_the_studios_project_page_refuses_a_dog_by_its_upload_name(tmp_path):
    with tiny_studio(tmp_path) as (url, _):
        request = urllib.request.Request(f"{url}/api/t/0123456789abcdef/project?name=dogs.jpg&steps=1", method="POST",
                                         data=DOG.read_bytes())
        job_url = None
        deadline = time.monotonic() + 60
        while True:
            with urllib.request.urlopen(request if job_url is None else job_url, timeout=60) as response:
                job = json.loads(response.read())
            job_url = f"{url}/api/t/0123456789abcdef/project/{job['id']}"
            if job["done"] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert job["done"] and job["face"] is None
    assert job["error"] == ("dogs.jpg: the face found is not a human face (dlib's human face detector does not confirm "
                            "it); give a photo of a person")


def test_real_faces_pass_the_check():
    missing = [str(p) for p in HUMANS if not p.is_file()]
    if missing:
        pytest.skip(f"real photos not found: {', '.join(missing)} (the shared data folder beside the repository)")
    old_man = load_photo(HUMANS[3])  # the lowest score of these
    for name, image in [*((p, load_photo(p)) for p in HUMANS), ("mirrored", np.ascontiguousarray(old_man[:, ::-1]))]:
        face = pick_faces(detect_faces(image), max_faces=1)[0]
        assert human_score(image, face.box) > HUMAN_FLOOR, name
    assert align_photo(HUMANS[0], 64).shape == (64, 64, 3)  # the whole path, check included


def test_identity_refuses_a_dog_in_one_line():
    if not HUMANS[0].exists():
        pytest.skip(f"no shared data at {HUMANS[0]}")
    line = _refused(["identity", DOG, HUMANS[0]])
    assert line == f"facegen: error: {DOG}: the face found is not a human face (dlib's human face detector does " \
                   "not confirm it); give a photo of a person"
