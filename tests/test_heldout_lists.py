"""The held-out protocol's two lists (benchmarks/heldout/{a,b}.txt): outside the training photos, disjoint, and two
draws from one distribution, so set B against set A is a floor and not a measure of a gap between them."""
from __future__ import annotations

import importlib
import random
from pathlib import Path

import pytest

REPO = Path(__file__).parents[1]
LISTS = REPO / "benchmarks" / "heldout"
UTK_IMAGES = REPO.parent / "shared" / "data" / "utkface" / "images"
AGE_BANDS = ((0, 20), (20, 40), (40, 60), (60, 200))


def listed(name: str) -> list[str]:
    return (LISTS / f"{name}.txt").read_text().split()


def utk_age(line: str) -> int:
    return int(line.rsplit("/", 1)[-1].split("_", 1)[0])


def band_shares(lines: list[str]) -> list[float]:
    ages = [utk_age(line) for line in lines if line.startswith("utkface/")]
    return [sum(low <= a < high for a in ages) / len(ages) for low, high in AGE_BANDS]


def test_each_list_holds_the_training_mix_once_and_the_two_share_no_face():
    a, b = listed("a"), listed("b")
    for lines in (a, b):
        assert len(set(lines)) == len(lines) == 2000
        assert sum(line.startswith("celeba/") for line in lines) == 1200
        assert sum(line.startswith("utkface/") for line in lines) == 800
    assert not set(a) & set(b)


def test_the_lists_hold_no_training_photo():
    lines = listed("a") + listed("b")
    assert all(int(line.split("/")[1].split(".")[0]) > 6000 for line in lines if line.startswith("celeba/"))
    if not UTK_IMAGES.is_dir():
        pytest.skip(f"no UTKFace photos at {UTK_IMAGES} to name the training set's first 4,000")
    trained = set(sorted(p.name for p in UTK_IMAGES.iterdir())[:4000])
    assert not {line.rsplit("/", 1)[-1] for line in lines if line.startswith("utkface/")} & trained


def test_the_two_sets_are_draws_from_one_age_distribution():
    # UTKFace names begin with the age: cut in file order, one set would be the younger half of the pool
    for share_a, share_b in zip(band_shares(listed("a")), band_shares(listed("b"))):
        assert abs(share_a - share_b) <= 0.04


def test_dealing_an_age_sorted_pool_gives_two_like_sets(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "tools"))
    heldout = importlib.import_module("heldout")
    rng = random.Random(3)
    pool = sorted(f"utkface/{rng.randint(1, 99)}_0_0_{i:017d}.jpg.chip.jpg" for i in range(1600))
    first, second = heldout.deal(pool)
    assert len(first) == len(second) == 800
    assert sorted(first + second) == pool
    assert first == sorted(first) and second == sorted(second)
    assert heldout.deal(pool) == [first, second]  # one seeded shuffle: the same lists every time
    mean = [sum(map(utk_age, s)) / len(s) for s in (first, second)]
    assert abs(mean[0] - mean[1]) < 3  # file order parts them by ~38 years (names sort "10_" < "9_")
    assert abs(sum(map(utk_age, pool[:800])) / 800 - sum(map(utk_age, pool[800:])) / 800) > 30
