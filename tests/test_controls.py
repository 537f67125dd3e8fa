"""Explicit controls on tiny networks (the mechanics): the search, the keep projection, the refusals, the
controls file and the entanglement report."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from facegen_cli.cli.main import app
from facegen_cli.controls.identity_hold import refine_identity
from facegen_cli.controls.entanglement import disentangled, draw_heatmap, network_directions, report
from facegen_cli.controls.steer import broyden, plan_moves, steer
from facegen_cli.controls.store import Control, read_controls, save_controls
from facegen_cli.errors import BadInput, BadParameter, FacegenError
from facegen_cli.latent.directions import Direction, save_direction, store_dir
from facegen_cli.latent.identity_span import IdentitySpan, save_identity_span
from facegen_cli.sampler import Sampler


def test_broyden_hits_a_target_of_a_monotone_reader():
    reading = lambda a: 40 + 30 * np.tanh(a / 4)  # noqa: E731 - saturating, like an estimator
    a, residual, renders = broyden(lambda a: reading(a) - 62.0, np.array([[5.0]]), np.array([0.5]), limit=10)
    assert abs(reading(a[0]) - 62.0) <= 0.5 and abs(residual[0]) <= 0.5
    assert renders <= 7


def test_broyden_solves_coupled_readings_jointly_and_stays_within_the_limit():
    mix = np.array([[3.0, 1.0], [-0.8, 2.0]])
    read = lambda a: mix @ a + 0.05 * a ** 3  # noqa: E731
    target = np.array([4.0, -3.0])
    a, residual, _ = broyden(lambda a: read(a) - target, np.diag([2.0, 2.5]), np.array([0.05, 0.05]), limit=10)
    assert np.all(np.abs(residual) <= 0.05)
    a, residual, _ = broyden(lambda a: read(a) - np.array([500.0, 0.0]), np.diag([3.0, 2.0]), np.ones(2), limit=4)
    assert np.all(np.abs(a) <= 4) and residual[0] < 0  # out of reach: as near as the limit allows


@pytest.fixture
def fitted(tiny_net, private_cache):
    """Three controls and a Male direction for the tiny network, in its store; returns the directions."""
    rng = np.random.default_rng(0)
    vectors = {name: v / np.linalg.norm(v) for name, v in
               zip(("Age_years", "Yaw", "Smiling", "Male"), rng.standard_normal((4, 64)).astype(np.float32))}
    folder = store_dir(tiny_net)
    for name, v in vectors.items():
        save_direction(Direction(name, v, tiny_net.network_id, None, {"attr": name}), folder)
    save_controls([Control("Age", "Age_years", 4.0), Control("Yaw", "Yaw", -3.0, [0, 1, 2, 3]),
                   Control("Smiling", "Smiling", 0.8)], tiny_net.network_id, folder)
    return vectors


def test_the_controls_file_round_trips(tmp_path):
    controls = [Control("Age", "Age_years", 4.25, None, {"cv_r2": 0.5}, 8), Control("Yaw", "Yaw", -3.0, [0, 1])]
    path = save_controls(controls, "abc123", tmp_path)
    assert read_controls(path) == ("abc123", controls)
    for bad in (-1, 2.5, True):
        path.write_text(json.dumps({"format": "facegen-controls", "version": 1, "network_id": "x", "controls": [
            {"name": "Age", "direction": "a", "slope": 1, "identity_free": bad}]}))
        with pytest.raises(FacegenError, match="control Age: identity_free must be a whole number"):
            read_controls(path)
    path.write_text(json.dumps({"format": "facegen-controls", "version": 1, "network_id": "x",
                                "controls": [{"name": "Height", "direction": "h", "slope": 1}]}))
    with pytest.raises(FacegenError, match="unknown control 'Height'"):
        read_controls(path)
    path.write_text("{")
    with pytest.raises(FacegenError, match="controls.json: unreadable"):
        read_controls(path)


def test_the_step_is_orthogonal_to_the_kept_directions(tiny_net, fitted):
    moves, kept = plan_moves(tiny_net, {"age": 40, "Smiling": 0.9}, ["Male", "Yaw"])
    assert [m.name for m in moves] == ["Age", "Smiling"] and [k.name for k in kept] == ["Male", "Yaw"]
    for move in moves:
        assert abs(np.dot(move.vector, fitted["Male"])) < 1e-5 and abs(np.dot(move.vector, fitted["Yaw"])) < 1e-5
        assert np.linalg.norm(move.vector) == pytest.approx(1, abs=1e-5)
    assert np.dot(moves[0].vector, fitted["Age_years"]) > 0.5  # still mostly the control's own direction


def test_a_control_moves_along_its_direction_freed_of_the_identity_axes(tiny_net, fitted):
    folder = store_dir(tiny_net)
    axes = np.linalg.qr(np.random.default_rng(1).standard_normal((64, 64)))[0].T  # rows: orthonormal
    metric = (axes.T * np.linspace(2.0, 0.01, 64)) @ axes  # axes[0] changes the person most
    save_controls([Control("Age", "Age_years", 4.0, None, {}, 3), Control("Smiling", "Smiling", 0.8)],
                  tiny_net.network_id, folder)
    with pytest.raises(FacegenError, match="free identity axes, but no identity-span.npy is beside it"):
        plan_moves(tiny_net, {"Age": 40}, [])
    save_identity_span(IdentitySpan(metric.astype(np.float32), tiny_net.network_id), folder)
    (age, smiling), _ = plan_moves(tiny_net, {"Age": 40, "Smiling": 0.9}, [])
    assert np.abs(axes[:3] @ age.vector).max() < 1e-5 and np.linalg.norm(age.vector) == pytest.approx(1, abs=1e-5)
    assert np.dot(age.vector, fitted["Age_years"]) > 0.5
    assert np.array_equal(smiling.vector, fitted["Smiling"])  # identity_free 0: the direction as fitted
    # Kept, a freed control is held along its direction as fitted (freed, it may move its reading too little to
    # correct a drift within the hold's bound), its slope probed; a control freed of nothing keeps its slope.
    (_, [kept_age]), (_, [kept_smiling]) = (plan_moves(tiny_net, {"Smiling": 0.9}, ["Age"]),
                                            plan_moves(tiny_net, {"Age": 40}, ["Smiling"]))
    assert np.array_equal(kept_age.vector, fitted["Age_years"]) and kept_age.slope is None
    assert np.array_equal(kept_smiling.vector, fitted["Smiling"]) and kept_smiling.slope == 0.8
    save_controls([Control("Age", "Age_years", 4.0, None, {}, 64)], tiny_net.network_id, folder)
    with pytest.raises(FacegenError, match="control Age frees 64 identity axes of 64"):
        plan_moves(tiny_net, {"Age": 40}, [])


@pytest.mark.parametrize("targets, keep, error, fragment", [
    ({"Height": 3}, [], BadInput, "unknown control 'Height'"),
    ({"Age": 500}, [], BadParameter, "Age=500 is outside 5..90 years"),
    ({"Yaw": 170}, [], BadParameter, "Yaw=170 is outside -45..45 degrees"),
    ({"Smiling": 1.5}, [], BadParameter, "Smiling=1.5 is outside 0..1"),
    ({"Pitch": 10}, [], BadInput, "no direction for control Pitch"),
    ({"Age": 40}, ["age"], BadInput, "Age is both set and kept"),
    ({"Age": 40}, ["Wings"], BadInput, "cannot keep 'Wings'"),
    ({"Age": 40}, ["Male", "Male"], BadParameter, "^keep Male is given twice$"),
    ({"Age": 40}, ["Male", "male"], BadParameter, "^keep male is given twice$"),
    ({"Age": 40}, ["", ""], BadParameter, "^keep has an empty name"),
    ({"Age": 40}, ["Male", " "], BadParameter, "^keep has an empty name"),
    ({}, [], BadParameter, "set at least one control"),
])
def test_bad_requests_are_refused(tiny_net, fitted, targets, keep, error, fragment):
    with pytest.raises(error, match=fragment):
        plan_moves(tiny_net, targets, keep)


def test_steering_reaches_a_target_read_on_the_image(tiny_net, fitted):
    """A reader that is monotone along Age's direction (the image's projection on the change that direction
    makes): the search must land on the target reading, move nothing but the span, and report kept values."""
    sampler = Sampler(tiny_net)
    ws = sampler.seed_latent(3)
    base = sampler.images(ws[None])[0].astype(np.float64)
    pattern = sampler.images((ws + fitted["Age_years"])[None])[0].astype(np.float64) - base
    pattern /= np.sum(pattern ** 2)

    def reader(images):
        age = 30 + 4 * np.array([np.sum((im - base) * pattern) for im in images.astype(np.float64)])
        return {"Age": age, "Male": np.full(len(images), 0.3)}

    result = steer(sampler, ws, {"Age": 38}, ["Male"], reader=reader, identity=None)
    assert abs(result.achieved["Age"] - 38) <= 1.0 and result.met == {"Age": True}
    assert result.kept_before == {"Male": 0.3} and result.kept_after == {"Male": 0.3}
    step = (result.ws - ws)
    assert np.allclose(step, step[0]) and abs(np.dot(step[0], fitted["Male"])) < 1e-4
    assert json.loads(json.dumps(result.summary()))["requested"] == {"Age": 38}


def test_a_kept_reading_the_set_control_drags_along_is_held_by_its_own_direction(tiny_net, fitted):
    """The Male reading moves with the Age change itself (as a real estimator's does), which projecting the
    Male direction out of the step cannot stop: the search must use the Male direction to hold it, within
    the kept limit, while Age still reaches its target."""
    sampler = Sampler(tiny_net)
    ws = sampler.seed_latent(5)
    base = sampler.images(ws[None])[0].astype(np.float64)

    def pattern(vector):
        change = sampler.images((ws + vector)[None])[0].astype(np.float64) - base
        return change / np.sum(change ** 2)

    age_pattern, male_pattern = pattern(fitted["Age_years"]), pattern(fitted["Male"])

    def reader(images):
        along = lambda p: np.array([np.sum((im - base) * p) for im in images.astype(np.float64)])  # noqa: E731
        age, male = along(age_pattern), along(male_pattern)
        return {"Age": 30 + 4 * age, "Male": 1 / (1 + np.exp(-(male + 1.2 * age)))}

    result = steer(sampler, ws, {"Age": 34}, ["Male"], reader=reader, identity=None)
    assert abs(result.achieved["Age"] - 34) <= 1.0
    assert abs(result.kept_after["Male"] - result.kept_before["Male"]) <= 0.05
    assert result.strengths["Male"] != 0
    unheld = 1 / (1 + np.exp(-1.2))  # Age 34 is one unit of the age pattern: what projection alone leaves
    assert abs(unheld - 0.5) > 0.15


def test_refining_for_identity_pulls_the_descriptor_back_and_misses_no_reading_by_more():
    """Two strengths and one identity axis, all linear: the search's answer (0.5 tolerance off, the descriptor
    0.6 from the source's) is refined to a face nearer the source whose reading still misses by at most that."""
    reads = np.array([[1.0, 0.0, 0.3]])  # the reading moves with the first strength and a little with the axis
    describes = np.zeros((128, 3))
    describes[0] = [0.3, 0.0, 0.25]  # the first strength drags the descriptor; the axis can pull it back
    describes[1] = [0.0, 0.2, 0.0]
    calls = []

    def evaluate(c):
        calls.append(c.copy())
        return reads @ c - np.array([2.0]), describes @ c

    start = np.array([2.5, 0.0, 0.0])
    best, distance = refine_identity(evaluate, start, np.array([10.0, 3.0, 4.0]), np.zeros(128))
    before = np.linalg.norm(describes @ start)
    assert distance < 0.5 * before and distance == pytest.approx(np.linalg.norm(describes @ best))
    assert abs((reads @ best - 2.0)[0]) <= 1.0
    assert np.all(np.abs(best) <= [10.0, 3.0, 4.0])
    # no face described at the start: the search's answer stands, nothing else tried
    assert refine_identity(lambda c: (np.zeros(1), None), start, np.full(3, 4.0), np.zeros(128)) == (start, None)
    # a pull that would cost the reading more than the search left it is not taken
    stuck, _ = refine_identity(lambda c: (np.array([5.0 * c[2] + 0.2]), describes @ c * [[1], [1]][0][0]),
                               np.zeros(3), np.full(3, 4.0), describes @ np.array([0.0, 0.0, 1.0]))
    assert abs(5.0 * stuck[2] + 0.2) <= 1.0


class LatentCamera:
    """A stand-in sampler whose 'image' is the W+ latent itself, so the readings below are exact functions of it."""

    def __init__(self, net):
        self.net = net

    def images(self, latents):
        return np.asarray(latents, np.float64).reshape(len(latents), -1)


def test_keeping_identity_pulls_the_face_back_along_the_identity_span_and_still_meets_the_target(tiny_net, fitted):
    """The age edit drags a 'descriptor' that one axis of the network's identity span can pull back: keeping
    identity must end much nearer the source's descriptor than the plain search, with the age still met."""
    camera = LatentCamera(tiny_net)
    ws = Sampler(tiny_net).seed_latent(5)
    age = fitted["Age_years"]
    axis = np.random.default_rng(1).standard_normal(64)
    axis -= np.dot(axis, age) * age
    axis /= np.linalg.norm(axis)
    metric = 10 * np.outer(axis, axis) + 0.01 * np.eye(64)
    save_identity_span(IdentitySpan(metric.astype(np.float32), tiny_net.network_id, {}), store_dir(tiny_net))
    w = lambda image: image.reshape(len(ws), -1).mean(0)  # noqa: E731 - the latent's mean over its layers

    def reader(images):
        return {"Age": np.array([30 + 4 * np.dot(w(im), age) for im in images])}

    def describe(image):
        d = np.zeros(128)
        d[0] = 0.2 * np.dot(w(image), age) + 0.2 * np.dot(w(image), axis)
        return d

    plain = steer(camera, ws, {"Age": 38}, [], reader=reader, identity=None)
    kept = steer(camera, ws, {"Age": 38}, ["identity"], reader=reader, identity=None, describe=describe)
    source = describe(camera.images(ws[None])[0])
    moved_by = lambda result: float(np.linalg.norm(describe(result.image) - source))  # noqa: E731
    assert moved_by(plain) > 0.1 and moved_by(kept) < 0.25 * moved_by(plain)
    assert abs(kept.achieved["Age"] - 38) <= 1.0 and kept.met == {"Age": True}
    assert kept.strengths["identity"] > 1 and np.allclose(kept.ws, kept.ws[0])  # moved on every layer alike
    assert kept.summary()["strengths"]["identity"] == kept.strengths["identity"]


def test_the_cli_refuses_bad_controls_in_one_line(tiny_net, fitted, tmp_path):
    for args, fragment in ((["--set", "Age=500"], "--set Age=500 is outside"),
                           (["--set", "Wings=1"], "unknown control 'Wings'"),
                           (["--set", "Age=old"], "--set Age='old': give one finite number, e.g. Age=1"),
                           (["--set", "Age=nan"], "--set Age='nan': give one finite number"),
                           (["--set", "Age=40", "--keep", "Age"], "both set and kept"),
                           (["--set", "Age=40", "--set", "age=50"], "given twice"),
                           (["--set", "Age=40", "--keep", "Male,Male"], "--keep Male is given twice"),
                           (["--set", "Age=40", "--keep", ","], "--keep has an empty name"),
                           (["--set", "Age=40", "--direction", "Smiling"], "takes no --direction"),
                           (["--set", "Age=40", "--keep-identity"], "cannot keep identity: this network has no "
                                                                    "identity span")):
        result = CliRunner().invoke(app, ["edit", "seed:1", *args, "-o", str(tmp_path / "o"),
                                          "-n", str(tiny_net.path)])
        lines = result.stderr.splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and fragment in lines[0], result.stderr
        assert not (tmp_path / "o").exists()


def test_the_report_has_one_row_per_direction_and_draws_a_heatmap(tiny_net, fitted, tmp_path):
    def reader(images):
        mean = images.reshape(len(images), -1).mean(1)
        return {"Age": mean / 4, "Yaw": mean - 120, "Smiling": mean / 255}

    result = report(Sampler(tiny_net), [0, 1], step=1.0, reader=reader, identity=None)
    assert result["directions"] == ["Age_years", "Male", "Smiling", "Yaw"]
    assert result["estimators"] == ["Age", "Yaw", "Smiling", "identity"]
    assert np.asarray(result["matrix"], dtype=float).shape == (4, 4)
    assert result["units"] == {"Age": "years", "Yaw": "degrees", "Smiling": "probability", "identity": "dlib distance"}
    assert json.loads(json.dumps(result)) == result
    with Image.open(draw_heatmap(result, tmp_path / "map.png")) as image:
        assert image.size[0] > 150 and image.size[1] > 90
    for step in (0, -1, 1e308):
        with pytest.raises(BadParameter, match="step"):
            report(Sampler(tiny_net), [0], step=step, reader=reader, identity=None)


def test_the_report_after_disentangling_moves_each_direction_orthogonally_to_the_conditional_ones(tiny_net, fitted):
    sampler = Sampler(tiny_net)
    plain = network_directions(sampler)
    held = disentangled(plain, ["Male", "Yaw"], sampler)
    assert [d.name for d in held] == [d.name for d in plain]
    for d in held:
        for name in ("Male", "Yaw"):
            if d.name != name:
                assert abs(np.dot(d.vector, fitted[name])) < 1e-5
    male = next(d for d in held if d.name == "Male").vector  # Male keeps its own part, less Yaw's
    assert abs(np.dot(male, fitted["Yaw"])) < 1e-5 and np.dot(male, fitted["Male"]) > 0.5

    def reader(images):
        mean = images.reshape(len(images), -1).mean(1)
        return {"Age": mean / 4, "Smiling": mean / 255}

    result = report(sampler, [0], step=1.0, reader=reader, identity=None, conditional=["Male"])
    assert result["conditional"] == ["Male"] and result["directions"] == [d.name for d in plain]
    with pytest.raises(BadInput):
        report(sampler, [0], step=1.0, reader=reader, identity=None, conditional=["Wings"])
