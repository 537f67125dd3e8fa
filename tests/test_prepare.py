"""facegen prepare on real photos from ../shared/data: detection, landmarks, alignment, labels, bad files."""
from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from facegen_cli import fileio
from facegen_cli.data.dataset import ImageDataset
from facegen_cli.prepare import align, detect, pipeline
from facegen_cli.prepare.detect import detect_faces, pick_faces, read_photo
from facegen_cli.prepare.landmarks import face_points, landmark_drift, plausible_face
from facegen_cli.prepare.pipeline import PrepareOptions, prepare

DATA = Path(__file__).parents[1].parent / "shared" / "data"
WILD = DATA / "wild"
pytestmark = pytest.mark.skipif(not WILD.is_dir(), reason=f"real face photos not found at {DATA}")

TWO_PEOPLE = WILD / "face_recognition" / "two_people.jpg"  # Obama and Biden, 1126x661
COUPLE = WILD / "deepface" / "couple.jpg"  # two large faces, 2280x1588
BBT1 = WILD / "face_api_js" / "bbt1.jpg"  # four people on a sofa
SMALL_FACE = WILD / "face_recognition" / "obama-240p.jpg"  # one face of about 73 px
BOX = PrepareOptions(align="box", size=64)


def _report(out: Path) -> dict:
    return json.loads((out / pipeline.REPORT_FILE).read_text())


def _dataset(out: Path) -> dict:
    return json.loads((out / "dataset.json").read_text())


@pytest.mark.parametrize("detector, photo, detect_size, count", [
    ("haar", TWO_PEOPLE, 1024, 2), ("haar", COUPLE, 1024, 2), ("haar", BBT1, 1024, 4),
    ("dlib", TWO_PEOPLE, 1024, 2), ("dlib", COUPLE, 1024, 2), ("dlib", BBT1, 1024, 4),
    ("dlib-cnn", TWO_PEOPLE, 640, 2),
    pytest.param("dlib-cnn", COUPLE, 640, 2, marks=pytest.mark.slow),  # the CNN takes seconds per photo on CPU
])
def test_each_detector_counts_the_faces_of_group_photos(detector, photo, detect_size, count):
    rgb = read_photo(photo).rgb
    faces = detect_faces(rgb, detector, detect_size=detect_size)
    assert len(faces) == count
    for face in faces:  # boxes come back in full-resolution pixels, not the downscaled copy's
        assert face.side > 0.05 * max(rgb.shape[:2]) and face.box[2] <= rgb.shape[1] and face.box[3] <= rgb.shape[0]


def test_upsample_finds_faces_too_small_at_the_detection_size():
    rgb = read_photo(BBT1).rgb
    assert len(detect_faces(rgb, "dlib", upsample=0, detect_size=640)) < 4
    assert len(detect_faces(rgb, "dlib", upsample=1, detect_size=640)) == 4


def test_min_and_max_faces_pick_the_largest_left_to_right():
    faces = detect_faces(read_photo(BBT1).rgb, "dlib")
    two = pick_faces(faces, max_faces=2)
    assert len(two) == 2 and two[0].box[0] < two[1].box[0]
    assert min(f.side for f in two) >= max(sorted(f.side for f in faces)[:2])
    assert pick_faces(faces, min_face=10_000) == []


@pytest.mark.parametrize("points", [68, 5])
def test_landmarks_sit_in_sane_places(points):
    rgb = read_photo(TWO_PEOPLE).rgb
    for face in detect_faces(rgb, "dlib"):
        p = face_points(rgb, face.box, points)
        left, top, right, bottom = face.box
        for x, y in (p.eye_left, p.eye_right, p.mouth):
            assert left <= x <= right and top <= y <= bottom
        assert p.eye_left[0] < p.mouth[0] < p.eye_right[0]
        assert max(p.eye_left[1], p.eye_right[1]) < p.mouth[1]
        eye_gap = np.hypot(*(p.eye_right - p.eye_left))
        assert 0.25 < eye_gap / face.side < 0.6


def test_ffhq_crop_is_stable_when_prepared_again():
    rgb = read_photo(SMALL_FACE.with_name("obama-720p.jpg")).rgb
    face = detect_faces(rgb, "dlib")[0]
    first = align.align_ffhq(rgb, face_points(rgb, face.box), 256)
    again_face = detect_faces(first, "dlib")[0]
    points = face_points(first, again_face.box)
    quad = align.ffhq_quad(points)  # the crop of a crop should be the whole image again
    corners = np.array([[0, 0], [0, 256], [256, 256], [256, 0]])
    assert np.abs(quad - corners).max() < 256 * 0.04
    second = align.align_ffhq(first, points, 256)
    centre = slice(64, 192)  # the face; the borders see reflection padding
    diff = np.abs(first[centre, centre].astype(int) - second[centre, centre].astype(int)).mean()
    assert diff < 12


def test_celeba_crop_takes_the_classic_window():
    assert align.celeba_rect(178, 218) == (25, 45, 153, 173)
    assert align.celeba_rect(89, 109) == (12.5, 22.5, 76.5, 86.5)  # the half-size copy in shared/data
    rgb = np.zeros((218, 178, 3), np.uint8)
    rgb[45:173, 25:153] = 200
    assert (align.crop(rgb, align.celeba_rect(178, 218), 64) == 200).all()


def _raw_with(tmp_path: Path, *photos: Path, names: list[str] | None = None) -> Path:
    raw = tmp_path / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for photo, name in zip(photos, names or [p.name for p in photos]):
        (raw / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, raw / name)
    return raw


def test_csv_labels_follow_each_face_of_a_photo(tmp_path):
    raw = _raw_with(tmp_path, TWO_PEOPLE, SMALL_FACE, names=["a/two.jpg", "one.jpg"])
    csv = tmp_path / "labels.csv"
    csv.write_text("file,group\na/two.jpg,1\none.jpg,0\n")
    report = prepare(raw, tmp_path / "out", BOX, labels=str(csv), workers=1)
    assert report["faces"] == 3
    data = _dataset(tmp_path / "out")
    files = {name: src["file"] for name, src in data["sources"]}
    assert [[n, files[n]] for n, _ in data["labels"]] == [
        ["img00000000.png", "a/two.jpg"], ["img00000001.png", "a/two.jpg"], ["img00000002.png", "one.jpg"]]
    assert [lab for _, lab in data["labels"]] == [1, 1, 0]
    boxes = [src["box"] for _, src in data["sources"]]
    assert boxes[0][0] < boxes[1][0]  # the two faces of one photo, left to right
    labels = ImageDataset(tmp_path / "out", use_labels=True)[1][1]
    assert labels.tolist() == [0.0, 1.0]  # an integer class is one-hot in the reader


def test_celeba_attributes_land_on_their_images(tmp_path):
    celeba = DATA / "celeba10k"
    names = ["000003.jpg", "000001.jpg", "000002.jpg"]
    raw = _raw_with(tmp_path, *(celeba / "images" / n for n in names))
    opts = PrepareOptions(align="celeba", size=64)
    prepare(raw, tmp_path / "out.zip", opts, labels=str(celeba / "list_attr_celeba.txt"),
            attrs=["Smiling", "Male"], workers=1)
    data = ImageDataset(tmp_path / "out.zip", use_labels=True)
    meta = data.read_meta()
    assert data.label_names == ["Smiling", "Male"]
    lines = (celeba / "list_attr_celeba.txt").read_text().splitlines()
    header = lines[1].split()
    rows = {ln.split()[0]: ln.split()[1:] for ln in lines[2:5]}
    by_source = {name: src["file"] for name, src in meta["sources"]}
    for i, name in enumerate(data.names):
        row = rows[by_source[name]]
        expected = [int(row[header.index(a)] == "1") for a in ("Smiling", "Male")]
        assert data[i][1].tolist() == expected
    assert data[0][0].shape == (3, 64, 64)


def test_utkface_names_give_labels_and_bad_names_are_skipped(tmp_path):
    images = DATA / "utkface" / "images"
    names = ["100_0_0_20170112213500903.jpg.chip.jpg", "26_1_2_20170116174525125.jpg.chip.jpg",
             "61_1_20170109150557335.jpg.chip.jpg"]
    present = [n for n in names if (images / n).exists()]
    if len(present) != 3:
        names[1] = next(p.name for p in sorted(images.glob("26_1_2_*")))
    raw = _raw_with(tmp_path, *(images / n for n in names))
    report = prepare(raw, tmp_path / "out", PrepareOptions(align="none", size=64, gray=True), labels="utkface",
                     workers=1)
    assert report["faces"] == 2 and report["skipped"] == {"no label": 1}
    assert report["skipped_files"][0]["file"] == names[2]
    data = _dataset(tmp_path / "out")
    assert data["label_names"] == ["age", "gender", "race"]
    assert [lab for _, lab in data["labels"]] == [[100, 0, 0], [26, 1, 2]]
    assert Image.open(tmp_path / "out" / "img00000000.png").mode == "L"


def _bad_files(raw: Path) -> dict[str, str]:
    """One of every kind of bad or odd file, and the report entry each should get."""
    face = Image.open(SMALL_FACE).convert("RGB")

    def encoded(img: Image.Image, fmt: str, **kw) -> bytes:
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        return buf.getvalue()

    jpeg = encoded(face, "JPEG")
    gray16 = Image.fromarray(np.asarray(face.convert("L")).astype(np.uint16) * 257)
    rgb16 = np.asarray(face)[:, :, ::-1].astype(np.uint16) * 257  # BGR for OpenCV, which writes 16-bit PNG
    rgba16 = np.dstack([rgb16, np.full(rgb16.shape[:2], 65535, np.uint16)])
    files = {
        "empty.jpg": (b"", "empty file"),
        "notes.jpg": (b"file,label\nthese are not pixels\n", "not an image"),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "truncated"),
        "corrupt.png": (encoded(face, "PNG")[:100] + bytes(300) + encoded(face, "PNG")[400:], "corrupt"),
        "broken-header.jpg": (jpeg[:3] + bytes(500), "corrupt"),
        "anim.gif": (encoded(face, "GIF"), "unsupported format"),
        "blank.png": (encoded(Image.new("RGB", (200, 200), "white"), "PNG"), "no face"),
        "grayscale.jpg": (encoded(face.convert("L"), "JPEG"), "grayscale"),
        "cmyk.jpg": (encoded(face.convert("CMYK"), "JPEG"), "CMYK"),
        "sixteen.png": (encoded(gray16, "PNG"), "16-bit"),
        "sixteen-rgb.png": (cv2.imencode(".png", rgb16)[1].tobytes(), "16-bit RGB"),
        "sixteen-rgba.png": (cv2.imencode(".png", rgba16)[1].tobytes(), "16-bit RGBA"),
        "alpha.png": (encoded(face.convert("RGBA"), "PNG"), "RGBA"),
        "photo.bmp": (encoded(face, "BMP"), None),
        "webp-named.png": (encoded(face, "WEBP", quality=90), None),
        "sideways.jpg": (encoded(face.rotate(90, expand=True), "JPEG", exif=_orientation(6)), None),
    }
    for name, (data, _) in files.items():
        (raw / name).write_bytes(data)
    return {name: kind for name, (_, kind) in files.items()}


def _orientation(value: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif


CONVERTED = ("grayscale", "CMYK", "16-bit", "16-bit RGB", "16-bit RGBA", "RGBA")


def test_every_kind_of_bad_file_is_skipped_or_converted_and_reported(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    expected = _bad_files(raw)
    report = prepare(raw, tmp_path / "out", BOX, workers=1)
    reasons = {s["file"]: s["reason"] for s in report["skipped_files"]}
    converted = {c["file"]: c["from"] for c in report["converted_files"]}
    for name, kind in expected.items():
        if kind in CONVERTED:
            assert converted.get(name) == kind and name not in reasons, name
        elif kind is not None:
            assert reasons.get(name, "").startswith(kind), (name, reasons.get(name))
    used = {src["file"] for _, src in _dataset(tmp_path / "out")["sources"]}
    assert used == {n for n, k in expected.items() if k is None or k in CONVERTED}
    assert report["photos"] == len(expected) and report["faces"] == len(used)
    assert report["skipped"]["corrupt"] == 2 and _report(tmp_path / "out") == report


def test_a_face_below_min_face_is_skipped_with_its_reason(tmp_path):
    raw = _raw_with(tmp_path, SMALL_FACE)
    report = prepare(raw, tmp_path / "out", PrepareOptions(align="box", size=64, min_face=100), workers=1)
    assert report["faces"] == 0
    assert report["skipped_files"][0]["reason"].startswith("face below the minimum size")


def test_a_killed_run_resumes_without_redoing_finished_photos(tmp_path, monkeypatch):
    photos = [SMALL_FACE, TWO_PEOPLE, WILD / "face_api_js" / "angry.jpg", WILD / "face_api_js" / "sad.jpg"]
    raw = _raw_with(tmp_path, *photos)
    full = prepare(raw, tmp_path / "full", BOX, workers=1)
    real, seen = pipeline.process_photo, []

    def dies_on_the_third(path, opts):
        if len(seen) == 2:
            raise KeyboardInterrupt
        seen.append(path.name)
        return real(path, opts)

    monkeypatch.setattr(pipeline, "process_photo", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        prepare(raw, tmp_path / "out", BOX, workers=1)
    out = tmp_path / "out"
    assert not (out / "dataset.json").exists() and not list(out.glob(".*.tmp"))
    assert len(list(out.glob("img*.png"))) == 2  # angry.jpg and obama-240p.jpg, one face each
    seen.clear()
    monkeypatch.setattr(pipeline, "process_photo", lambda path, opts: seen.append(path.name) or real(path, opts))
    progress = []
    resumed = prepare(raw, out, BOX, workers=1, resume=True, on_progress=lambda *counts: progress.append(counts))
    assert seen == ["sad.jpg", "two_people.jpg"]
    assert progress[0] == (2, 4, 2) and progress[-1] == (4, 4, resumed["faces"])  # resumed photos counted
    assert _dataset(out) == _dataset(tmp_path / "full")
    assert resumed["faces"] == full["faces"] and resumed["photos"] == full["photos"]
    for name, _ in _dataset(out)["sources"]:
        assert (out / name).read_bytes() == (tmp_path / "full" / name).read_bytes()


def test_progress_reaches_a_python_caller_through_the_callback(tmp_path):
    raw = _raw_with(tmp_path, TWO_PEOPLE, SMALL_FACE, WILD / "face_api_js" / "white.png")
    progress = []
    report = prepare(raw, tmp_path / "out", BOX, workers=1, on_progress=lambda *counts: progress.append(counts))
    assert [(done, total) for done, total, _ in progress] == [(0, 3), (1, 3), (2, 3), (3, 3)]
    faces = [f for _, _, f in progress]
    assert faces[0] == 0 and faces == sorted(faces) and faces[-1] == report["faces"] == 3
    assert progress[-1][0] == report["photos"]


def test_the_engine_imports_no_rich():
    """Drawing is the CLI's: prepare reports through its callback, so the engine runs without rich loaded."""
    code = "import sys, facegen_cli.prepare.pipeline; assert 'rich' not in sys.modules, sorted(sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]


def test_resume_refuses_other_options_and_a_finished_zip_is_left_alone(tmp_path):
    raw = _raw_with(tmp_path, SMALL_FACE)
    out = tmp_path / "out.zip"
    first = prepare(raw, out, BOX, workers=1)
    stamp = out.stat().st_mtime_ns
    assert prepare(raw, out, BOX, workers=1, resume=True) == first and out.stat().st_mtime_ns == stamp
    with pytest.raises(pipeline.FacegenError, match="already exists"):
        prepare(raw, out, BOX, workers=1)
    prepare(raw, tmp_path / "dir", BOX, workers=1)
    with pytest.raises(pipeline.FacegenError, match="other options"):
        prepare(raw, tmp_path / "dir", PrepareOptions(align="box", size=128), workers=1, resume=True)
    assert zipfile.ZipFile(out).read("img00000000.png")[:4] == b"\x89PNG"


def test_cli_writes_the_dataset_and_exits_by_whether_a_face_was_written(tmp_path):
    from typer.testing import CliRunner

    from facegen_cli.cli.main import app

    raw = _raw_with(tmp_path, TWO_PEOPLE, WILD / "face_api_js" / "white.png")
    out = tmp_path / "faces"
    result = CliRunner().invoke(app, ["prepare", str(raw), str(out), "--align", "ffhq", "--landmarks", "5",
                                      "--size", "64", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    assert "faces written" in result.stderr and "no face" in result.stderr
    assert ImageDataset(out).resolution == 64 and len(ImageDataset(out)) == 2

    empty = _raw_with(tmp_path / "e", WILD / "face_api_js" / "white.png")
    result = CliRunner().invoke(app, ["prepare", str(empty), str(tmp_path / "none"), "--workers", "1"])
    assert result.exit_code == 1 and "facegen: error:" in result.stderr and "no face written" in result.stderr
    nothing = tmp_path / "nothing"
    (nothing / ".cache").mkdir(parents=True)
    (nothing / ".DS_Store").write_bytes(b"x")
    for out in (tmp_path / "nothing.zip", tmp_path / "nothing-out"):
        result = CliRunner().invoke(app, ["prepare", str(nothing), str(out), "--workers", "1"])
        assert result.exit_code == 2 and not out.exists()
        assert result.stderr.strip() == (f"facegen: error: {nothing}: holds no files to read (2 passed over: "
                                          f"hidden, special or unreadable); nothing written")
    result = CliRunner().invoke(app, ["prepare", str(empty), str(tmp_path / "x"), "--size", "100"])
    assert result.exit_code == 2 and "--size must be one of" in result.stderr
    result = CliRunner().invoke(app, ["prepare", str(empty), str(tmp_path / "x"), "--upsample", "-1"])
    assert result.exit_code == 2 and "--upsample must be auto or a whole number" in result.stderr


def _skips(report: dict) -> dict[str, str]:
    return {s["file"]: s["reason"] for s in report["skipped_files"]}


def test_fifos_devices_links_and_unlistable_folders_are_reported_never_read(tmp_path, monkeypatch):
    raw = _raw_with(tmp_path, SMALL_FACE, names=["photos/face.jpg"])
    os.mkfifo(raw / "pipe.jpg")  # opening it to read would block for ever
    (raw / "null.png").symlink_to(os.devnull)
    (raw / "gone.jpg").symlink_to(raw / "nowhere.jpg")
    (raw / "linked").symlink_to(raw / "photos")  # a second way to the same folder
    (raw / "photos" / "up").symlink_to(raw)  # a loop
    elsewhere = _raw_with(tmp_path / "elsewhere", SMALL_FACE, names=["far.jpg"]).rename(tmp_path / "far")
    (raw / "zlink").symlink_to(elsewhere)  # a symlinked folder outside RAW is followed
    locked = raw / "locked"
    locked.mkdir()
    shutil.copy(SMALL_FACE, locked / "hidden-face.jpg")
    if os.geteuid() == 0:  # root lists a chmod 000 folder anyway: make the listing fail as it would for a user
        real_scandir = os.scandir
        monkeypatch.setattr(os, "scandir", lambda p: _refuse(p) if Path(p) == locked else real_scandir(p))
    locked.chmod(0)
    try:
        report = prepare(raw, tmp_path / "out", BOX, workers=1)
    finally:
        locked.chmod(0o755)
    assert _skips(report) == {
        "gone.jpg": "broken symlink (No such file or directory)",
        "linked/up/": "symlink loop (leads back to ./)",
        "locked/": "folder not listed (Permission denied)",
        "null.png": "not a regular file (character device)",
        "photos/": "folder already listed (as linked/)",
        "pipe.jpg": "not a regular file (FIFO)",
    }
    assert sorted(src["file"] for _, src in _dataset(tmp_path / "out")["sources"]) == ["linked/face.jpg",
                                                                                     "zlink/far.jpg"]
    assert report["photos"] == 5 and report["skipped"]["not a regular file"] == 2
    with pytest.raises(pipeline.Skip, match=r"not a regular file \(FIFO\)"):
        read_photo(raw / "pipe.jpg")  # and the reader itself never waits on one


def _refuse(path):
    raise PermissionError(13, "Permission denied", str(path))


def test_non_utf8_names_are_stored_as_strict_json_with_the_raw_bytes(tmp_path):
    raw = _raw_with(tmp_path, SMALL_FACE, names=["ok.jpg"])
    face_name, note_name = b"caf\xe9.jpg", b"\xff\xfe notes.jpg"
    shutil.copy(SMALL_FACE, os.path.join(os.fsencode(raw), face_name))
    Path(os.fsdecode(os.path.join(os.fsencode(raw), note_name))).write_text("not pixels")
    prepare(raw, tmp_path / "out", BOX, workers=1)
    for name in ("dataset.json", pipeline.REPORT_FILE):
        text = (tmp_path / "out" / name).read_text(encoding="utf-8")
        assert "\\ud" not in text.lower()  # no lone surrogates, which strict JSON readers refuse
        json.loads(text)
    sources = {src["file"]: src for _, src in _dataset(tmp_path / "out")["sources"]}
    assert sources["caf\\xe9.jpg"]["file_bytes"] == face_name.hex() and "file_bytes" not in sources["ok.jpg"]
    skipped = _report(tmp_path / "out")["skipped_files"]
    assert skipped[0]["file"] == "\\xff\\xfe notes.jpg" and skipped[0]["reason"] == "not an image"
    assert (os.fsencode(raw) + b"/" + bytes.fromhex(skipped[0]["file_bytes"])) == os.path.join(
        os.fsencode(raw), note_name)
    assert os.path.exists(os.path.join(os.fsencode(raw), bytes.fromhex(sources["caf\\xe9.jpg"]["file_bytes"])))


def test_finished_outputs_drop_the_journal_and_refuse_other_options_on_resume(tmp_path):
    raw = _raw_with(tmp_path, SMALL_FACE)
    for out in (tmp_path / "dir", tmp_path / "set.zip"):
        first = prepare(raw, out, BOX, workers=1)
        if out.is_dir():
            assert sorted(p.name for p in out.iterdir()) == ["dataset.json", "img00000000.png", pipeline.REPORT_FILE]
        else:
            assert sorted(zipfile.ZipFile(out).namelist()) == ["dataset.json", "img00000000.png",
                                                               pipeline.REPORT_FILE]
        stamp = (out / "dataset.json" if out.is_dir() else out).stat().st_mtime_ns
        assert prepare(raw, out, BOX, workers=1, resume=True) == first  # finished: nothing is redone
        assert (out / "dataset.json" if out.is_dir() else out).stat().st_mtime_ns == stamp
        with pytest.raises(pipeline.FacegenError, match="other options"):
            prepare(raw, out, PrepareOptions(align="box", size=128), workers=1, resume=True)


def test_an_output_inside_raw_is_never_read_as_photos(tmp_path):
    raw = _raw_with(tmp_path, SMALL_FACE, names=["face.jpg"])
    prepare(raw, raw / "faces", BOX, workers=1)  # an older output, finished, inside RAW
    (raw / "link-to-out").symlink_to(raw / "again")
    report = prepare(raw, raw / "again", BOX, workers=1)
    assert report["photos"] == 1 and report["faces"] == 1
    assert _skips(report) == {"faces/": "output of facegen prepare, not read as photos"}
    report = prepare(raw, raw / "set.zip", BOX, workers=1)
    assert report["photos"] == 1 and set(_skips(report)) == {"faces/", "again/", "link-to-out/"}
    with pytest.raises(pipeline.BadInput, match="is the photo folder itself"):
        prepare(raw, raw / "faces" / "..", BOX, workers=1, resume=True)


def test_pillows_decompression_bomb_warning_does_not_reject_a_photo_under_our_limit(monkeypatch):
    w, h = Image.open(SMALL_FACE).size
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", w * h * 2 // 3)  # Pillow warns, it does not refuse yet
    assert read_photo(SMALL_FACE).rgb.shape == (h, w, 3)
    monkeypatch.setattr(detect, "MAX_PIXELS", w * h - 1)
    with pytest.raises(pipeline.Skip, match=f"too large \\({w}x{h}\\)"):
        read_photo(SMALL_FACE)


def test_real_16_bit_and_transparent_photos_are_listed_as_converted(tmp_path):
    face = np.asarray(Image.open(SMALL_FACE).convert("RGB"))
    deep = face[:, :, ::-1].astype(np.uint16) * 256 + 128  # Pillow keeps the high byte
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    photo = read_photo(tmp_path / "deep.png")
    assert photo.converted == "16-bit RGB" and np.abs(photo.rgb.astype(int) - face).max() <= 1
    assert read_photo(WILD / "face_recognition" / "tests__32bit.png").converted == "RGBA"


@pytest.mark.parametrize("signum", [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)])
def test_a_killed_run_prints_one_line_and_no_worker_traceback(tmp_path, signum):
    faces = sorted((DATA / "utkface" / "images").iterdir())[:400]
    raw = tmp_path / "raw"
    raw.mkdir()
    for f in faces:
        (raw / f.name).symlink_to(f)
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", "from facegen_cli.cli.main import main; main()", "prepare", str(raw), str(out),
           "--align", "box", "--size", "64", "--workers", "2"]
    run = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    journal = out / ".prepare-journal.jsonl"
    deadline = time.monotonic() + 120
    while (not journal.exists() or journal.read_text().count("\n") < 3) and time.monotonic() < deadline:
        time.sleep(0.05)  # until the workers have finished a photo or two
    os.killpg(run.pid, signum)  # as Ctrl-C does: the whole process group
    _, err = run.communicate(timeout=60)
    assert run.returncode == 128 + signum, err
    assert "Traceback" not in err and "leaked" not in err and "Error" not in err.replace("error:", "")
    assert err.strip().splitlines()[-1].startswith(f"facegen: error: prepare stopped ({signum.name})")
    assert not list(out.glob(".*.tmp")) and not (out / "dataset.json").exists()
    records = [json.loads(line) for line in journal.read_text().splitlines()[1:]]  # after the options line
    kept = {sample["name"] for record in records for sample in record["samples"]}
    assert len(records) >= 2 and kept  # every finished photo's faces are on disk (one in flight may be too)
    assert kept <= {png.name for png in out.glob("img*.png")}


def test_a_stop_between_a_temporary_file_and_its_cleanup_leaves_no_temporary(tmp_path, monkeypatch):
    """The signal can land after mkstemp made the file and before the write's cleanup is armed."""
    made = tempfile.mkstemp

    def make_then_stop(*args, **kwargs):
        made(*args, **kwargs)
        raise pipeline.Stopped(signal.SIGINT)

    monkeypatch.setattr(fileio.tempfile, "mkstemp", make_then_stop)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jpg").symlink_to(TWO_PEOPLE)
    out = tmp_path / "out"
    with pytest.raises(pipeline.Stopped):
        prepare(raw, out, BOX, workers=1)
    assert not list(out.glob(".*.tmp")) and list(out.iterdir()) == [out / pipeline.JOURNAL_FILE]


def _faces_42px(photo: Path) -> np.ndarray:
    """`photo` scaled so its faces are about 42 px wide, as in a group photo taken from further away."""
    rgb = read_photo(photo).rgb
    k = 42 / np.median([f.box[2] - f.box[0] for f in detect_faces(rgb, "dlib", 0)])
    return cv2.resize(rgb, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)


def test_the_default_finds_faces_of_35_to_50_px_that_upsample_0_misses(tmp_path):
    small = _faces_42px(WILD / "face_api_js" / "bbt4.jpg")  # six people on a sofa, 311 px wide
    assert len(detect_faces(small, "dlib", upsample=0)) == 0
    found = detect_faces(small, "dlib")
    assert len(found) == 6 and all(35 <= f.box[2] - f.box[0] <= 55 for f in found)
    raw = tmp_path / "raw"
    raw.mkdir()
    cv2.imwrite(str(raw / "sofa.png"), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
    assert prepare(raw, tmp_path / "out", PrepareOptions(size=64), workers=1)["faces"] == 6
    # the rule: upsample once while the detection copy is at most 1024 px (dlib), 512 px (CNN); Haar never
    assert [detect.auto_upsample("dlib", s) for s in (1024, 1025)] == [1, 0]
    assert [detect.auto_upsample("dlib-cnn", s) for s in (512, 513)] == [1, 0]
    assert detect.auto_upsample("haar", 100) == 0


def test_haar_boxes_whose_landmarks_do_not_hold_are_skipped_and_counted(tmp_path):
    snow = WILD / "face_recognition" / "knn_test__johnsnow_test1.jpg"  # one face and a fur collar
    rgb = read_photo(snow).rgb
    boxes = [f.box for f in detect_faces(rgb, "haar")]
    drift = sorted(landmark_drift(rgb, b) for b in boxes)
    assert len(boxes) == 3 and drift[0] < 0.1 and drift[1] > 0.55  # the face; two patches of fur
    two = read_photo(TWO_PEOPLE).rgb
    assert all(plausible_face(two, f.box) for f in detect_faces(two, "haar"))
    raw = _raw_with(tmp_path, snow)
    report = prepare(raw, tmp_path / "out", PrepareOptions(detector="haar", align="box", size=64), workers=1)
    assert report["faces"] == 1 and report["faces_rejected"] == 2
    (face_box,) = [src["box"] for _, src in _dataset(tmp_path / "out")["sources"]]
    assert face_box == list(min(boxes, key=lambda b: landmark_drift(rgb, b)))
