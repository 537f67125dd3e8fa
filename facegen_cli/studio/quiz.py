"""The real-or-generated quiz: real faces from `--data` and generated ones, one at a time in random
order; every answer goes into the studio's survey, exported as CSV and as per-image accuracy.

A real face reaches the page exactly as the training set showed faces to the model, so only the
pixels' content can tell it from a generated one: a prepared dataset (dataset.json at its root) is used
as is, resampled like `facegen prepare` where its size is not the network's; a folder of photos is
FFHQ-aligned by prepare's own worker at the network's size, and photos without a detectable face are
skipped and counted. Both sides are encoded by one function (`service.png`): same size, mode and PNG
chunks."""
from __future__ import annotations

import csv
import datetime
import io
import random
import secrets
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from facegen_cli.data.dataset import LABELS_FILE, ImageSource, decode_image
from facegen_cli.errors import BadInput, FacegenError
from facegen_cli.networks import Network
from facegen_cli.prepare import align
from facegen_cli.prepare.pipeline import PrepareOptions, process_photo
from facegen_cli.sampler import Sampler, attribute_defaults, label_count
from facegen_cli.studio.service import png
from facegen_cli.studio.state import NotFound, Tab, new_id

MAX_ROUNDS = 100
MAX_ROWS = 100_000  # answers the survey keeps (the oldest go first)
MAX_CACHED = 4096  # real faces kept aligned and encoded
HARDEST = 5
ANSWERS = ("real", "generated")
CSV_COLUMNS = ["participant", "quiz", "round", "image", "truth", "answer", "correct", "ms", "time"]


def channels_of(rgb: np.ndarray, channels: int) -> np.ndarray:
    """HWC uint8 RGB with the network's channel count (grey as prepare makes it)."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[:, :, None] if channels == 1 else rgb


class RealFaces:
    """The real photos of `data` as PNGs at `size` pixels, prepared like the training set (see the module)."""

    def __init__(self, data: Path, size: int, channels: int):
        self.source = ImageSource(data)
        self.names = self.source.names
        self.prepared = self.source.has(LABELS_FILE)
        if not self.names:
            raise FacegenError(f"--data {data}: no images (PNG, JPEG, WebP or BMP) in it")
        if self.source.is_zip and not self.prepared:
            raise BadInput(f"--data {data}: a zip must be a dataset written by facegen prepare (it has no "
                           f"{LABELS_FILE}); pass a folder of photos instead")
        self.size, self.channels = size, channels
        self.options = PrepareOptions(size=size, gray=channels == 1, max_faces=1)  # prepare's FFHQ alignment
        self.skipped: dict[str, str] = {}  # name -> why it has no face to show
        self.cache: OrderedDict[str, bytes] = OrderedDict()
        self.lock = threading.Lock()

    def pixels(self, name: str) -> np.ndarray:
        """The face of one file as HWC uint8 at the network's size; raises FacegenError when it has none."""
        if not self.prepared:
            found = process_photo(self.source.path / name, self.options)
            if not found.samples:
                raise FacegenError(found.skip or "no face")
            rgb = decode_image(found.samples[0][0], name)
        else:
            rgb = decode_image(self.source.read(name), name)
            h, w = rgb.shape[:2]
            if h != w:
                raise FacegenError(f"not square ({w}x{h})")
            if h != self.size:  # the resampling of prepare's `align none`
                rgb = align.crop(rgb, align.centre_rect(w, h), self.size, self.options.quality)
        return channels_of(rgb, self.channels)

    def face(self, name: str) -> bytes | None:
        """The PNG of one file's face, or None (counted in `skipped`) when it has none; the caller holds the lock."""
        if name in self.cache:
            self.cache.move_to_end(name)
            return self.cache[name]
        try:
            encoded = png(self.pixels(name))
        except FacegenError as error:
            self.skipped[name] = str(error)
            return None
        self.cache[name] = encoded
        if len(self.cache) > MAX_CACHED:
            self.cache.popitem(last=False)
        return encoded

    def draw(self, rng: random.Random, count: int) -> list[tuple[str, bytes]]:
        """Up to `count` faces of files drawn at random, each (name, PNG); files without a face are passed over."""
        found: list[tuple[str, bytes]] = []
        with self.lock:
            for name in rng.sample(self.names, len(self.names)):
                if len(found) == count:
                    break
                encoded = None if name in self.skipped else self.face(name)
                if encoded is not None:
                    found.append((name, encoded))
        if not found:
            raise FacegenError(f"--data {self.source.path}: none of its {len(self.names)} images has a face "
                               "the detector finds")
        return found


@dataclass
class Item:
    key: str  # real:<name in --data> or seed:<N>
    truth: str
    png: bytes
    answer: str | None = None
    ms: float | None = None


@dataclass
class Quiz:
    id: str
    items: list[Item]

    def summary(self, tab: str) -> dict:
        return {"id": self.id, "count": len(self.items),
                "images": [f"/api/t/{tab}/quiz/{self.id}/{i}.png" for i in range(len(self.items))],
                "answered": sum(item.answer is not None for item in self.items)}


@dataclass
class Survey:
    """Every answer given in this studio, in order (bounded), with an anonymous participant per tab."""

    rows: deque = field(default_factory=lambda: deque(maxlen=MAX_ROWS))
    participants: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, tab: Tab, quiz: Quiz, index: int, item: Item) -> None:
        with self.lock:
            who = self.participants.setdefault(tab.id, f"p{len(self.participants) + 1}")
            self.rows.append([who, quiz.id, index + 1, item.key, item.truth, item.answer,
                              int(item.answer == item.truth), round(item.ms or 0),
                              datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")])

    def per_image(self) -> dict[str, dict]:
        """image key -> its truth, how many answered it and how many of them rightly."""
        images: dict[str, dict] = {}
        with self.lock:
            for row in self.rows:
                counts = images.setdefault(row[3], {"image": row[3], "truth": row[4], "answers": 0, "correct": 0})
                counts["answers"] += 1
                counts["correct"] += row[6]
        return images

    def stats(self) -> dict:
        """Accuracy over all answers, on real and on generated images, and per image (the best told apart first)."""
        images = sorted(self.per_image().values(), key=lambda it: (-it["correct"] / it["answers"], it["image"]))

        def accuracy(items: list[dict]) -> dict:
            answers, correct = sum(it["answers"] for it in items), sum(it["correct"] for it in items)
            return {"answers": answers, "correct": correct, "accuracy": round(correct / answers, 4) if answers else None}

        return {"participants": len(self.participants), **accuracy(images),
                "by_truth": {truth: accuracy([it for it in images if it["truth"] == truth]) for truth in ANSWERS},
                "images": [{**it, "accuracy": round(it["correct"] / it["answers"], 4)} for it in images]}

    def csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        with self.lock:
            writer.writerows(self.rows)
        return buf.getvalue()


class QuizMaster:
    """Makes quizzes from the real faces in `data` and the network's samples, and scores them."""

    def __init__(self, net: Network, data: Path | None, lock: threading.Lock):
        self.net, self.lock = net, lock
        G = net.G_ema
        self.reals = RealFaces(data, G.img_resolution, G.img_channels) if data else None
        self.names = self.reals.names if self.reals else []
        self.survey = Survey()

    @property
    def skipped(self) -> int:
        """Files of `data` passed over so far for want of a face."""
        return len(self.reals.skipped) if self.reals else 0

    def start(self, tab: Tab, rounds: int, psi: float) -> Quiz:
        """A new quiz for the tab: half real, half generated, shuffled.

        Generated faces come from seeds 0 to N-1 for N files in `data` (more only when a quiz needs them),
        so a face seen again in a later quiz is as likely generated as real."""
        if not self.reals:
            raise BadInput("the quiz needs real faces: start the studio with --data FOLDER (or a dataset zip)")
        if not 2 <= rounds <= MAX_ROUNDS:
            raise BadInput(f"a quiz has 2-{MAX_ROUNDS} rounds")
        sampler = Sampler(self.net, psi=psi, label=attribute_defaults(self.net) if label_count(self.net) else None)
        rng = random.Random(secrets.randbits(64))
        reals = self.reals.draw(rng, rounds // 2)
        count = rounds - len(reals)
        seeds = rng.sample(range(max(len(self.names), count)), count)
        items = [Item(f"real:{name}", "real", encoded) for name, encoded in reals]
        with self.lock:
            items += [Item(f"seed:{s.seed} psi:{psi:g}", "generated", png(s.image)) for s in sampler.samples(seeds)]
        rng.shuffle(items)
        tab.quiz = Quiz(new_id(), items)
        return tab.quiz
    def quiz(self, tab: Tab, quiz_id: str) -> Quiz:
        if tab.quiz is None or tab.quiz.id != quiz_id:
            raise NotFound(f"this tab has no quiz {quiz_id!r}; start a new one")
        return tab.quiz

    def item(self, tab: Tab, quiz_id: str, index: int) -> Item:
        items = self.quiz(tab, quiz_id).items
        if not 0 <= index < len(items):
            raise NotFound(f"the quiz has no image {index}")
        return items[index]

    def answer(self, tab: Tab, quiz_id: str, index: int, answer: str, ms: float) -> dict:
        """Record one answer (once per image)."""
        if answer not in ANSWERS:
            raise BadInput(f"answer {answer!r} is neither real nor generated")
        quiz, item = self.quiz(tab, quiz_id), self.item(tab, quiz_id, index)
        with tab.lock:
            if item.answer is not None:
                raise BadInput(f"image {index + 1} is already answered")
            item.answer, item.ms = answer, max(0.0, ms)
        self.survey.record(tab, quiz, index, item)
        return quiz.summary(tab.id)

    def result(self, tab: Tab, quiz_id: str) -> dict:
        """Score, each answered image with its truth, and the hardest of them by everyone's answers here."""
        quiz = self.quiz(tab, quiz_id)
        seen = self.survey.per_image()
        items = []
        for i, it in enumerate(quiz.items):
            done = it.answer is not None  # no peeking before answering: truth and others' answers come after
            counts = seen.get(it.key) if done else None
            answers, correct = (counts["answers"], counts["correct"]) if counts else (0, 0)
            items.append({"index": i, "image": f"/api/t/{tab.id}/quiz/{quiz.id}/{i}.png",
                          "truth": it.truth if done else None, "answer": it.answer, "correct": it.answer == it.truth,
                          "wrong": answers - correct, "answers": answers})
        answered = [it for it in items if it["answer"] is not None]
        hardest = sorted((it for it in answered if it["wrong"]), key=lambda it: (-it["wrong"] / it["answers"],
                                                                                 -it["answers"], it["index"]))
        return {"score": sum(it["correct"] for it in answered), "answered": len(answered), "total": len(items),
                "items": items, "hardest": hardest[:HARDEST]}
