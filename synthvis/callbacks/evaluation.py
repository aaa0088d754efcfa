"""Periodic zero-shot evaluation during training, logged to the Trainer's loggers."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from synthvis.evaluation.evaluator import TRAIN_ENV, ZeroShotEvaluator, summarize, write_eval_json
from synthvis.evaluation.video import log_gif
from synthvis.utils.loggers import tensorboard_writer

log = logging.getLogger(__name__)


class EvaluationCallback(L.Callback):
    """Evaluates an agent every `every_n_updates` updates and at the end of training; logs eval/<env>/return_*.

    `test_envs=False` evaluates the training env alone (learning curves at a seventh of the rendering when there
    are six test envs; the eval stage still evaluates every env).

    Acts on the training stages whose module acts on pixels (agent, finetune) and leaves the others alone. Runs
    on global rank 0 only (the other ranks wait at their next collective). The final evaluation is also written
    to <stage dir>/eval.json.
    """

    def __init__(self, evaluator: ZeroShotEvaluator, every_n_updates: int = 10_000, at_end: bool = True,
                 test_envs: bool = True) -> None:
        self.evaluator = evaluator
        self.every_n_updates = every_n_updates
        self.at_end = at_end
        self.envs = None if test_envs else [TRAIN_ENV]  # None: the training env and every test env

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        """Periodic evaluation; synthvis agents advance global_step once per update."""
        updates = trainer.global_step
        if self.every_n_updates > 0 and updates > 0 and updates % self.every_n_updates == 0:
            self._run(trainer, pl_module, updates)

    def on_train_end(self, trainer: L.Trainer, pl_module) -> None:
        """Final evaluation, written to <stage dir>/eval.json."""
        if self.at_end:
            updates = trainer.global_step
            results = self._run(trainer, pl_module, updates)
            if results is not None:
                write_eval_json(Path(trainer.default_root_dir) / "eval.json", results, self.evaluator, updates)

    @rank_zero_only
    def _run(self, trainer: L.Trainer, pl_module, step: int) -> dict[str, list[float]] | None:
        if not callable(getattr(pl_module, "act", None)):
            return None  # the diffusion model: nothing to roll out
        started = time.time()
        writer = tensorboard_writer(trainer.loggers)
        log_video = None
        if self.evaluator.video and writer is not None:
            def log_video(name: str, frames: list) -> None:
                log_gif(writer, f"eval/{name}/video", frames, step)
        results = self.evaluator.evaluate(pl_module, log_video=log_video, envs=self.envs)
        metrics = {}
        for name, summary in summarize(results).items():
            metrics[f"eval/{name}/return_mean"] = summary["return_mean"]
            metrics[f"eval/{name}/return_std"] = summary["return_std"]
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
        log.info("evaluation at update %d (%.0f s): %s", step, time.time() - started,
                 ", ".join(f"{name} {s['return_mean']:.1f}±{s['return_std']:.1f}"
                           for name, s in summarize(results).items()))
        return results
