"""The eval stage: the final agent on the training env and every zero-shot test env -> eval.json."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from synthvis.callbacks.evaluation import ZeroShotEvaluator, summarize, write_eval_json
from synthvis.stages.common import load_weights

log = logging.getLogger(__name__)

# Later stages replace the agent's heads; evaluate the most advanced agent the run has.
AGENT_WEIGHTS = ("finetune/agent.pt", "agent/agent.pt")


def final_agent_weights(run_dir: Path) -> Path:
    """The fine-tuned agent if the run has one, else the base agent."""
    for relative in AGENT_WEIGHTS:
        if (run_dir / relative).exists():
            return run_dir / relative
    raise FileNotFoundError(f"no agent weights in {run_dir} ({' or '.join(AGENT_WEIGHTS)}): "
                            "run the agent stage first, e.g. stages=[data,agent,eval]")


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Evaluate, log to TensorBoard, and write <run_dir>/eval.json."""
    weights = final_agent_weights(run_dir)
    agent, extras = load_weights(weights)
    if cfg.trainer.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        agent = agent.cuda()
    evaluator: ZeroShotEvaluator = instantiate(cfg.eval)
    logger = instantiate(cfg.logger, version="eval")
    results = evaluator.evaluate(agent, log_video=None)
    summary = summarize(results)
    step = int(extras.get("updates", 0))
    logger.log_metrics({f"eval/{name}/return_{stat}": s[f"return_{stat}"] for name, s in summary.items()
                        for stat in ("mean", "std")}, step=step)
    logger.finalize("success")
    write_eval_json(run_dir / "eval.json", results, evaluator, step, extra={"weights": str(weights)})
    width = max(map(len, summary))
    for name, s in summary.items():
        log.info("  %-*s return %8.1f ± %6.1f  (%d episodes)", width, name, s["return_mean"], s["return_std"],
                 len(s["returns"]))
    return {name: {"return_mean": s["return_mean"], "return_std": s["return_std"]} for name, s in summary.items()}
