"""The studio's bounded state and clean stop, without a server: tab eviction, a projection cancelled
by a stop, a quiz without real faces, tuned networks read back from their files."""
from __future__ import annotations

import io
import os
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("starlette")

from facegen_cli.errors import BadInput  # noqa: E402
from facegen_cli.networks import load_network  # noqa: E402
from facegen_cli.studio.projection import ProjectRequest, Projector  # noqa: E402
from facegen_cli.studio.quiz import QuizMaster  # noqa: E402
from facegen_cli.latent.tuning import TuneOptions, tune  # noqa: E402
from facegen_cli.sampler import Sampler  # noqa: E402
from facegen_cli.studio.service import TUNED_GRACE_S, TUNED_IN_MEMORY, Studio  # noqa: E402
from facegen_cli.studio.state import MAX_FACES, Face, Tab, Tabs  # noqa: E402
from tiny_nets import tiny_checkpoint  # noqa: E402


@pytest.fixture
def studio(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEGEN_CACHE", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    made = Studio(load_network(tiny_checkpoint(tmp_path / "tiny.safetensors")), tmp_path / "work")
    yield made
    made.close()
    torch.set_num_threads(threads)


def test_oldest_tab_goes_with_its_files(tmp_path):
    tabs = Tabs(tmp_path, limit=2)
    first = tabs.get("a" * 16)
    first.path("morph-x.gif").write_bytes(b"GIF89a")
    tabs.get("b" * 16)
    tabs.get("a" * 16)  # used again: now the newest
    tabs.get("c" * 16)
    assert [t.id for t in tabs.all()] == ["a" * 16, "c" * 16]
    assert (tmp_path / ("a" * 16)).is_dir() and not (tmp_path / ("b" * 16)).exists()
    with pytest.raises(BadInput, match="bad tab id"):
        tabs.get("../../etc")


def test_a_tab_keeps_its_newest_faces(tmp_path):
    tab = Tab("d" * 16, tmp_path)
    for i in range(MAX_FACES + 5):
        tab.add_face(Face(f"f{i}", f"seed {i}", np.zeros(3, np.float32), np.zeros(0, np.float32)))
    assert len(tab.faces) == MAX_FACES and next(iter(tab.faces)) == "f5"


def test_stopping_cancels_a_running_projection(studio):
    tab = studio.tabs.get("e" * 16)
    projector = Projector(studio)
    photo = io.BytesIO()
    Image.new("RGB", (32, 32), (100, 50, 20)).save(photo, "PNG")
    job = projector.start(tab, photo.getvalue(), "face.png", ProjectRequest("w", 2000, "none", False))
    while job.step < 2 and not job.done:
        time.sleep(0.02)
    started = time.monotonic()
    studio.close()  # what the server's shutdown calls
    assert job.done and job.error == "cancelled" and time.monotonic() - started < 10
    assert not [t for t in threading.enumerate() if t.name == f"project-{job.id}"]
    assert not studio.workdir.exists()
    assert projector.busy.acquire(blocking=False)  # free for the next projection


def test_quiz_without_real_faces_says_how(studio):
    quiz = QuizMaster(studio.net, None, studio.lock)
    with pytest.raises(BadInput, match="start the studio with --data"):
        quiz.start(studio.tabs.get("f" * 16), 4, 0.7)


def test_the_face_store_round_trips_and_sets_aside_what_does_not_fit(tmp_path, caplog):
    from facegen_cli.studio.store import FaceStore

    png = b"\x89PNG\r\n\x1a\n" + b"pixels"
    faces = [Face("0123456789ab", "seed 1 (psi 0.7)", np.arange(6, dtype=np.float32).reshape(2, 3),
                  np.zeros(0, np.float32), 0.7, "const", (0.25, -0.1), 30.0, png),
             Face("ba9876543210", "mix", np.ones((2, 3), np.float32), np.zeros(0, np.float32), png=png),
             Face("aaaabbbbcccc", "tuned me.png", np.ones((2, 3), np.float32), np.zeros(0, np.float32), png=png,
                  network="ddddeeeeffff", photo=png + b"photo")]
    FaceStore(tmp_path, (2, 3), 0).save("a" * 16, faces)
    loaded = FaceStore(tmp_path, (2, 3), 0).load("a" * 16)
    assert [(f.id, f.name, f.psi, f.translate, f.rotate, f.png, f.network, f.photo) for f in loaded] == \
        [(f.id, f.name, f.psi, f.translate, f.rotate, f.png, f.network, f.photo) for f in faces]
    np.testing.assert_array_equal(loaded[0].latent, faces[0].latent)
    assert FaceStore(tmp_path, (2, 3), 0).load("b" * 16) == []  # a tab never saved
    assert FaceStore(tmp_path, (4, 3), 0).load("a" * 16) == []  # another network's latents: set aside
    assert "does not fit this network" in caplog.text and (tmp_path / f"faces-{'a' * 16}.corrupt").exists()
    for damage in (b"", b"not a zip at all", b"PK\x03\x04"):
        (tmp_path / f"faces-{'c' * 16}.npz").write_bytes(damage)
        assert FaceStore(tmp_path, (2, 3), 0).load("c" * 16) == []
    store = FaceStore(tmp_path / "few", (2, 3), 0, limit=2)
    for tab in ("d", "e", "f"):
        store.save(tab * 16, faces[:1])
        time.sleep(0.01)
    assert sorted(p.name for p in store.folder.iterdir()) == [f"faces-{'e' * 16}.npz", f"faces-{'f' * 16}.npz"]


def test_a_tuned_face_is_drawn_by_its_tuned_network_read_back_from_its_file(studio):
    target = np.asarray(Image.new("RGB", (32, 32), (150, 110, 90)))
    ws = np.repeat(studio.net.G_ema.mapping.w_avg.numpy()[None], studio.net.G_ema.num_ws, 0)
    tuned, _, _ = tune(studio.net, target, ws, TuneOptions(steps=2, perceptual_weight=0))
    face = Face("0123456789ab", "tuned", ws, studio.default_c, network=studio.add_tuned(tuned))
    drawn = Sampler(tuned).images(ws[None])[0]
    assert np.abs(drawn.astype(int) - Sampler(studio.net).images(ws[None])[0]).mean() > 0  # tuning changed it
    for _ in range(TUNED_IN_MEMORY):  # pushed out of memory by newer tuned networks
        studio.add_tuned(tuned)
    assert face.network not in studio.tuned
    with studio.lock:
        np.testing.assert_array_equal(studio.face_sampler(face).images(ws[None])[0], drawn)
    assert studio.tuned_file(face) == studio.tuned_path(face.network).read_bytes()
    np.testing.assert_array_equal(Sampler(studio.net).images(ws[None])[0],  # the studio's own network unchanged
                                  Sampler(load_network(str(studio.net.path))).images(ws[None])[0])


def test_tuned_files_no_face_refers_to_are_deleted_once_old(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEGEN_CACHE", str(tmp_path / "cache"))
    studio = Studio(load_network(tiny_checkpoint(tmp_path / "tiny.safetensors")), tmp_path / "work", tmp_path / "state")
    try:
        ws = np.repeat(studio.net.G_ema.mapping.w_avg.numpy()[None], studio.net.G_ema.num_ws, 0)
        target = np.asarray(Image.new("RGB", (32, 32), (150, 110, 90)))
        tuned, _, _ = tune(studio.net, target, ws, TuneOptions(steps=1, perceptual_weight=0))
        png = io.BytesIO()
        Image.fromarray(target).save(png, "PNG")
        open_tab, saved_tab = studio.tabs.get("a" * 16), studio.tabs.get("b" * 16)
        kept = [studio.add_tuned(tuned) for _ in range(2)]
        open_tab.add_face(Face("0123456789ab", "open", ws, studio.default_c, network=kept[0], png=png.getvalue()))
        saved_tab.add_face(Face("0123456789ac", "saved", ws, studio.default_c, network=kept[1], png=png.getvalue()))
        studio.tabs._tabs.pop("b" * 16)  # dropped from memory; its faces stay in the state folder
        orphan, fresh = studio.add_tuned(tuned), studio.add_tuned(tuned)
        old = time.time() - 2 * TUNED_GRACE_S
        for network_id in (*kept, orphan):
            os.utime(studio.tuned_path(network_id), (old, old))
        dropped = studio.drop_unused_tuned()
        assert dropped == [studio.tuned_path(orphan)] and orphan not in studio.tuned
        assert all(studio.tuned_path(i).is_file() for i in (*kept, fresh))  # in use, or too new to judge
        with studio.lock:  # the saved tab's face is still drawn by its tuned network
            studio.face_sampler(studio.tabs.get("b" * 16).face("0123456789ac")).images(ws[None])
    finally:
        studio.close()
