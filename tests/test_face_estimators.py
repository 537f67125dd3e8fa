"""The face estimators in units (estimators/attributes.py, face.py) on real held-out faces."""
from __future__ import annotations

import numpy as np
import pytest

from facegen_cli.errors import BadParameter, FacegenError
from facegen_cli.estimators.attributes import read_attributes
from facegen_cli.estimators.face import estimator_names, read_face
from facegen_cli.latent.project import align_photo
from real_faces import CELEBA, CELEBA_IMAGES


def test_the_estimators_read_real_faces_in_units():
    """Twelve held-out CelebA photos aligned as the classifiers' training faces were (FFHQ, 64 px): age in
    years, the Male probability agreeing with CelebA's label on most, a mirrored face's yaw of the opposite
    sign."""
    if not CELEBA_IMAGES.is_dir():
        pytest.skip(f"real faces not found: {CELEBA_IMAGES}")
    numbers, faces = [], []
    for i in range(9001, 9030):
        try:
            faces.append(align_photo(CELEBA_IMAGES / f"{i:06d}.jpg", 64))
            numbers.append(i)
        except FacegenError:  # a face the detector misses unless upsampled, as prepare does
            continue
        if len(faces) == 12:
            break
    faces = np.stack(faces)
    values = read_face(faces)
    assert values["Age"].shape == (12,) and np.all((values["Age"] > 3) & (values["Age"] < 90))
    rows = [line.split(",") for line in (CELEBA / "labels.csv").read_text().splitlines()]
    male = np.array([rows[i][rows[0].index("Male")] == "1" for i in numbers])
    assert np.sum((values["Male"] > 0.5) == male) >= 10
    mirrored = read_face(faces[:, :, ::-1])
    turned = np.abs(values["Yaw"]) > 8
    assert np.all(np.sign(values["Yaw"][turned]) == -np.sign(mirrored["Yaw"][turned]))


def test_the_estimators_name_every_reading_and_refuse_what_is_not_an_image():
    faces = np.zeros((2, 64, 64, 3), np.uint8)
    assert sorted(read_face(faces)) == sorted(estimator_names())
    assert {"Age", "Smiling", "Gray_Hair"} <= set(read_attributes(faces[0]))
    with pytest.raises(BadParameter, match="expected HWC or NHWC uint8 RGB"):
        read_attributes(np.zeros((2, 64, 64, 3), np.float32))
