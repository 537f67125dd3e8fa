"""The dataset writer round-trips through the reader, for a folder and a zip, atomically."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch

from facegen_cli.data.dataset import ImageDataset
from facegen_cli.data.writer import DatasetWriter, encode_png
from facegen_cli.errors import FacegenError


def _images(n: int, channels: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    shape = (16, 16, channels) if channels == 3 else (16, 16)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(n)]


def _write(out, images, labels) -> list[str]:
    writer = DatasetWriter(out)
    names = [writer.write_png(i, encode_png(img)) for i, img in enumerate(images)]
    dataset = {"labels": [[n, lab] for n, lab in zip(names, labels)], "label_names": ["a", "b"]}
    writer.finish(names, dataset, {"extra.json": {"ok": True}})
    return names


@pytest.mark.parametrize("out_name", ["set", "set.zip"])
def test_round_trip_pixels_and_labels(tmp_path, out_name):
    images, labels = _images(3), [[0.0, 1.0], [1.0, 0.0], [0.5, 0.25]]
    out = tmp_path / out_name
    names = _write(out, images, labels)
    assert names == ["img00000000.png", "img00000001.png", "img00000002.png"]
    data = ImageDataset(out, use_labels=True)
    assert len(data) == 3 and data.label_names == ["a", "b"]
    for i, (img, lab) in enumerate(zip(images, labels)):
        pixels, label = data[i]
        assert np.array_equal(pixels.numpy().transpose(1, 2, 0), img)
        assert label.tolist() == lab
    if out_name.endswith(".zip"):
        assert not (tmp_path / "set.zip.partial").exists()
        assert set(zipfile.ZipFile(out).namelist()) == {*names, "dataset.json", "extra.json"}
    else:
        assert json.loads((out / "extra.json").read_text()) == {"ok": True}
    assert not list(tmp_path.rglob("*.tmp"))


def test_integer_labels_become_one_hot_and_gray_reads_as_one_channel(tmp_path):
    images = _images(2, channels=1)
    _write(tmp_path / "gray", images, [1, 0])
    data = ImageDataset(tmp_path / "gray", use_labels=True, channels=1)
    pixels, label = data[0]
    assert pixels.shape == (1, 16, 16) and np.array_equal(pixels[0].numpy(), images[0])
    assert label.tolist() == [0.0, 1.0]


def test_existing_output_needs_resume_and_finish_drops_stray_images(tmp_path):
    out = tmp_path / "set"
    _write(out, _images(3), [[0, 0]] * 3)
    with pytest.raises(FacegenError, match="already exists"):
        DatasetWriter(out)
    (out / ".img00000007.png.abc.tmp").write_bytes(b"half")  # left by a killed write
    writer = DatasetWriter(out, resume=True)
    assert not list(out.glob("*.tmp"))
    writer.finish(["img00000000.png"], {"labels": None}, {})
    assert sorted(p.name for p in out.glob("*.png")) == ["img00000000.png"]
    assert not ImageDataset(out).has_labels


@pytest.mark.parametrize("out_name", ["set", "set.zip"])
def test_work_file_is_dropped_and_a_finished_output_reads_as_complete(tmp_path, out_name):
    out = tmp_path / out_name
    writer = DatasetWriter(out, work_file=".journal")
    (writer.folder / ".journal").write_text("{}\n")
    names = [writer.write_png(0, encode_png(_images(1)[0]))]
    assert not DatasetWriter(out, resume=True, work_file=".journal").complete  # still being written
    writer.finish(names, {"labels": None}, {"extra.json": {"ok": True}})
    assert not (writer.folder / ".journal").exists()
    if out.suffix == ".zip":
        assert ".journal" not in zipfile.ZipFile(out).namelist()
    again = DatasetWriter(out, resume=True, work_file=".journal")
    assert again.complete and again.read_json("extra.json") == {"ok": True}
    with pytest.raises(FacegenError, match="cannot read missing.json"):
        again.read_json("missing.json")


def test_forked_loader_workers_read_a_zip_their_parent_already_opened(tmp_path):
    """Resume reads from the zip before the loader forks; each worker must still get its own handle."""
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(96)]
    out = tmp_path / "set.zip"
    _write(out, images, [[0.0, 1.0]] * len(images))
    data = ImageDataset(out)
    assert np.array_equal(data[0][0].numpy().transpose(1, 2, 0), images[0])  # the parent's handle is open now
    loader = torch.utils.data.DataLoader(data, batch_size=1, num_workers=2,
                                         multiprocessing_context="fork", sampler=list(range(96)) * 8)
    for i, (pixels, _) in enumerate(loader):
        assert np.array_equal(pixels[0].numpy().transpose(1, 2, 0), images[i % 96])
