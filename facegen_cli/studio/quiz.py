"""The real-or-generated quiz: real faces from `--data` and generated ones, one at a time in random
order; every answer goes into the studio's survey, exported as CSV."""
from __future__ import annotations

import csv
import datetime
import io
import random
import secrets
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from facegen_cli.checkpoint import Network
from facegen_cli.data.dataset import ImageSource, decode_image
from facegen_cli.errors import BadInput, FacegenError
from facegen_cli.sampler import Sampler, attribute_defaults, label_count
from facegen_cli.studio.service import png
from facegen_cli.studio.state import NotFound, Tab, new_id

MAX_ROUNDS = 100
MAX_ROWS = 100_000  # answers the survey keeps (the oldest go first)
HARDEST = 5
ANSWERS = ("real", "generated")
CSV_COLUMNS = ["participant", "quiz", "round", "image", "truth", "answer", "correct", "ms", "time"]


def square(rgb: np.ndarray, size: int, channels: int) -> np.ndarray:
    """The centre square of a photo at `size` pixels, with the network's channel count."""
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    img = Image.fromarray(rgb[top:top + side, left:left + side]).resize((size, size), Image.LANCZOS)
    arr = np.asarray(img.convert("L") if channels == 1 else img)
    return arr[:, :, None] if arr.ndim == 2 else arr


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

    def error_rates(self) -> dict[str, tuple[int, int]]:
        """image key -> (wrong answers, answers)."""
        rates: dict[str, list[int]] = {}
        with self.lock:
            for row in self.rows:
                counts = rates.setdefault(row[3], [0, 0])
                counts[0] += 1 - row[6]
                counts[1] += 1
        return {k: (v[0], v[1]) for k, v in rates.items()}

    def csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        with self.lock:
            writer.writerows(self.rows)
        return buf.getvalue()


class QuizMaster:
    """Makes quizzes from the real images in `data` and the network's samples, and scores them."""

    def __init__(self, net: Network, data: Path | None, lock: threading.Lock):
        self.net, self.lock = net, lock
        self.source = ImageSource(data) if data else None
        self.names = self.source.names if self.source else []
        if self.source and not self.names:
            raise FacegenError(f"--data {data}: no images (PNG, JPEG, WebP or BMP) in it")
        self.survey = Survey()

    def real(self, name: str) -> bytes:
        G = self.net.G_ema
        return png(square(decode_image(self.source.read(name), name), G.img_resolution, G.img_channels))

    def start(self, tab: Tab, rounds: int, psi: float) -> Quiz:
        """A new quiz for the tab: half real, half generated, shuffled."""
        if not self.names:
            raise BadInput("the quiz needs real faces: start the studio with --data FOLDER (or a dataset zip)")
        if not 2 <= rounds <= MAX_ROUNDS:
            raise BadInput(f"a quiz has 2-{MAX_ROUNDS} rounds")
        sampler = Sampler(self.net, psi=psi, label=attribute_defaults(self.net) if label_count(self.net) else None)
        rng = random.Random(secrets.randbits(64))
        reals = rng.sample(self.names, min(rounds // 2, len(self.names)))
        seeds = rng.sample(range(2**31), rounds - len(reals))
        items = [Item(f"real:{name}", "real", self.real(name)) for name in reals]
        with self.lock:
            items += [Item(f"seed:{s.seed}", "generated", png(s.image))
                      for s in sampler.samples(seeds)]
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
        rates = self.survey.error_rates()
        items = [{"index": i, "image": f"/api/t/{tab.id}/quiz/{quiz.id}/{i}.png",
                  "truth": it.truth if it.answer is not None else None,  # no peeking before answering
                  "answer": it.answer, "correct": it.answer == it.truth,
                  "wrong": rates.get(it.key, (0, 0))[0], "answers": rates.get(it.key, (0, 0))[1]}
                 for i, it in enumerate(quiz.items)]
        answered = [it for it in items if it["answer"] is not None]
        hardest = sorted((it for it in answered if it["wrong"]), key=lambda it: (-it["wrong"] / it["answers"],
                                                                                 -it["answers"], it["index"]))
        return {"score": sum(it["correct"] for it in answered), "answered": len(answered), "total": len(items),
                "items": items, "hardest": hardest[:HARDEST]}
