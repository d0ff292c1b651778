"""Learning-rate schedules and plateau tracking (``training.schedule``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from seqattn.config import Config


@dataclass
class Schedule:
    """Learning rate by step; ``plateau`` also decays on validation (state is plain numbers)."""

    kind: str
    lr: float
    warmup: int
    d_model: int
    factor: float = 0.5
    patience: int = 3
    min_lr: float = 0.0
    scale: float = 1.0
    bad: int = 0
    best: float | None = None

    def rate(self, step: int) -> float:
        step = max(step, 1)
        warm = min(1.0, step / self.warmup) if self.warmup else 1.0
        if self.kind == "inverse_sqrt":
            rate = self.lr * (min(warm, math.sqrt(self.warmup / step)) if self.warmup
                              else 1 / math.sqrt(step))
        elif self.kind == "noam":
            rate = self.lr * self.d_model ** -0.5 * min(step ** -0.5,
                                                        step * max(self.warmup, 1) ** -1.5)
        else:  # constant, plateau: linear warmup, then constant (times the plateau scale)
            rate = self.lr * warm * self.scale
        return max(rate, self.min_lr) if self.kind == "plateau" else rate

    def observe(self, value: float, higher_is_better: bool) -> None:
        """Plateau decay: after ``patience`` validations without improvement, scale by factor."""
        if self.kind != "plateau":
            return
        better = self.best is None or (value > self.best if higher_is_better else value < self.best)
        if better:
            self.best, self.bad = value, 0
        else:
            self.bad += 1
            if self.bad > self.patience:
                self.scale *= self.factor
                self.bad = 0

    def state(self) -> dict[str, float]:
        return {"scale": self.scale, "bad": self.bad,
                "best": float("nan") if self.best is None else self.best}

    def load(self, state: dict[str, Any]) -> None:
        self.scale, self.bad = float(state["scale"]), int(state["bad"])
        self.best = None if math.isnan(float(state["best"])) else float(state["best"])


def make_schedule(cfg: Config) -> Schedule:
    t = cfg.training
    return Schedule(t.schedule, t.lr, t.warmup_steps, cfg.model.hidden_size, t.plateau_factor,
                    t.plateau_patience, t.min_lr)
