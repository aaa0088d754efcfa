"""A training stage's Trainer carries every callback and logger of the config, each built from its `_target_`."""

from __future__ import annotations

from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from synthvis.callbacks.checkpoint import StageCheckpoint
from synthvis.callbacks.evaluation import EvaluationCallback
from synthvis.callbacks.finite_guard import FiniteGuard
from synthvis.callbacks.step_seed import StepSeed
from synthvis.stages.common import build_trainer
from tests.helpers import compose_config


def test_callbacks_and_loggers_added_in_config_join_every_training_stage(tmp_path):
    cfg = compose_config(["+callbacks.lr._target_=lightning.pytorch.callbacks.LearningRateMonitor",
                          "+logger.csv._target_=lightning.pytorch.loggers.CSVLogger",
                          "+logger.csv.save_dir=${paths.output_dir}", "+logger.csv.name=csv",
                          "+logger.csv.version=null"], tmp_path)
    for stage in ("agent", "diffusion", "finetune"):
        stage_dir = tmp_path / "run" / stage
        trainer = build_trainer(cfg, stage, stage_dir, [], "agent.lr", max_steps=1)
        kinds = [type(callback) for callback in trainer.callbacks]
        for kind in (StepSeed, FiniteGuard, StageCheckpoint, EvaluationCallback, LearningRateMonitor):
            assert kinds.count(kind) == 1, (stage, kind)
        assert [type(logger) for logger in trainer.loggers] == [TensorBoardLogger, CSVLogger]
        assert all(logger.version == stage for logger in trainer.loggers)  # each stage logs under its name
        assert trainer.default_root_dir == str(stage_dir)
        assert trainer.loggers[1].log_dir == str(tmp_path / "run" / "csv" / stage)
