"""The eval stage: the final agent on the training env and every zero-shot test env -> eval.json and js.json."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import instantiate
from lightning.pytorch.loggers import TensorBoardLogger

from synthvis.envs.task import task_name
from synthvis.evaluation.evaluator import TRAIN_ENV, ZeroShotEvaluator, summarize, write_eval_json
from synthvis.evaluation.latent_divergence import (
    encode_observations,
    heatmap_figure,
    latent_divergence,
    trunk_features,
)
from synthvis.evaluation.paired_divergence import paired_divergence
from synthvis.lightning_modules.offline_agent import OfflineAgent
from synthvis.stages.common import build_loggers, stage_device, stage_result
from synthvis.stages.context import RunContext, Trained
from synthvis.utils.files import atomic_write_json
from synthvis.utils.loggers import tensorboard_writer

log = logging.getLogger(__name__)


def final_agent(ctx: RunContext) -> Trained:
    """The fine-tuned agent if the run has one, else the base agent."""
    for name in ("finetuned", "agent"):
        if ctx.has(name):
            return ctx.trained(name)
    raise FileNotFoundError(f"no agent in {ctx.run_dir} (agent/agent.pt): run the agent stage first, e.g. "
                            "stages=[data,agent,eval]")


def reference_returns(evaluator: ZeroShotEvaluator, run_dir: Path) -> dict[str, dict[str, float]]:
    """What the training-env return is measured against: uniformly random actions (same episodes and seeds)
    and, when the run has a data stage, the offline dataset's mean episode return."""
    random = evaluator.random_returns()
    references = {"random": {"return_mean": float(np.mean(random)), "return_std": float(np.std(random)),
                             "episodes": len(random)}}
    data = stage_result(run_dir, "data")
    if data is not None:
        references["dataset"] = {"return_mean": data["return_mean"], "episodes": data["episodes"]}
    return references


def js_columns(js: dict[str, Any], env: str) -> str:
    """The final log line's latent-divergence columns for `env`: the rollout and the paired measure, labelled."""
    columns = ""
    if "divergence" in js:
        columns += "  rollout JS(real) {:.3f}".format(js["divergence"]["real"].get(env, float("nan")))
    paired = js.get("paired", {})
    if env in paired.get("divergence", {}):
        columns += "  paired JS {:.3f}  latent distance {:.3f}".format(paired["divergence"][env],
                                                                       paired["latent_distance"][env])
    elif env in paired.get("skipped", {}):
        columns += "  paired: skipped"
    return columns


def training_latent_sets(ctx: RunContext, agent: OfflineAgent) -> dict[str, np.ndarray]:
    """'real' (and 'real+synthetic' after upsampling): trunk features of the agent's training data, a seeded subset
    of at most analysis.max_train_rows per set; encoded from the training pixels when the run has no latents."""
    rng = np.random.default_rng(ctx.cfg.seed)
    max_rows = ctx.cfg.analysis.max_train_rows

    def subset(rows: np.ndarray) -> np.ndarray:
        return rows[np.sort(rng.choice(len(rows), min(max_rows, len(rows)), replace=False))]

    if not ctx.has("latents"):
        dataset = ctx.pixel_data().train_set
        return {"real": encode_observations(agent, dataset.__getitems__(subset(np.arange(len(dataset)))).obs.numpy())}
    real = ctx.latents("latents")
    sets = {"real": trunk_features(real.layout, subset(np.asarray(real.array)))}
    if ctx.has("synthetic"):
        synthetic = trunk_features(real.layout, subset(np.asarray(ctx.latents("synthetic").array)))
        sets["real+synthetic"] = np.concatenate([sets["real"], synthetic])
    return sets


def run(ctx: RunContext) -> dict[str, Any]:
    """Evaluate, compute the rollout and paired latent divergences, log (scalars, hparams, heatmap), write JSON."""
    cfg, run_dir = ctx.cfg, ctx.run_dir
    trained = final_agent(ctx)
    agent = trained.module.to(stage_device(cfg))
    evaluator: ZeroShotEvaluator = instantiate(cfg.eval)
    pairing = evaluator.pairing(cfg.analysis.paired_states, cfg.seed) if cfg.analysis.paired_states else None
    with evaluator:  # one set of worker processes for the agent's episodes and the random reference's
        results, observations = evaluator.evaluate_with_observations(
            agent, observation_stride=cfg.analysis.observation_stride, pairing=pairing)
        references = reference_returns(evaluator, run_dir)
    summary = summarize(results)
    step = trained.updates
    write_eval_json(run_dir / "eval.json", results, evaluator, step,
                    extra={"weights": str(trained.path), "references": references})

    loggers = build_loggers(cfg, "eval")
    writer = tensorboard_writer(loggers)
    metrics = {f"eval/{name}/return_{stat}": s[f"return_{stat}"] for name, s in summary.items()
               for stat in ("mean", "std")}
    metrics |= {f"eval/reference/{name}_return_mean": r["return_mean"] for name, r in references.items()}
    js: dict[str, Any] = {}
    if observations:
        js = latent_divergence(training_latent_sets(ctx, agent), agent, observations, cfg.analysis.bins,
                               cfg.analysis.binning)
        metrics |= {f"js/{train}/{env}": value for train, row in js["divergence"].items() for env, value in row.items()}
        if writer is not None:
            writer.add_figure("js/heatmap", heatmap_figure(js["divergence"]), step)
    if pairing is not None:
        paired = js["paired"] = paired_divergence(agent, pairing.observations(), cfg.analysis.bins,
                                                  cfg.analysis.binning)
        metrics |= {**{f"js_paired/{env}": value for env, value in paired["divergence"].items()},
                    **{f"latent_distance/{env}": value for env, value in paired["latent_distance"].items()},
                    "latent_distance_scale": paired["latent_distance_scale"]}
    if js:
        atomic_write_json(run_dir / "js.json", js)
    test_means = [s["return_mean"] for name, s in summary.items() if name != TRAIN_ENV]
    # TensorBoard's HPARAMS tab compares runs of a sweep on these: final returns against latent_dim, variant, seed.
    params = {"variant": cfg.get("variant", "unknown"), "latent_dim": cfg.latent_dim, "seed": cfg.seed,
              "env": task_name(cfg.env) or "unknown"}
    finals = {"hp/train_return": summary[TRAIN_ENV]["return_mean"],
              "hp/test_return": float(np.mean(test_means)) if test_means else float("nan")}
    for logger in loggers:
        logger.log_metrics(metrics, step=step)
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(params, finals)
        else:  # the other loggers take hyperparameters alone
            logger.log_hyperparams(params)
            logger.log_metrics(finals, step=step)
        logger.finalize("success")
    width = max(map(len, summary))
    log.info("  references on %s: uniform random actions %.1f ± %.1f%s", TRAIN_ENV,
             references["random"]["return_mean"], references["random"]["return_std"],
             f", dataset {references['dataset']['return_mean']:.1f}" if "dataset" in references else "")
    for name, s in summary.items():
        log.info("  %-*s return %8.1f ± %6.1f  (%d episodes)%s", width, name, s["return_mean"], s["return_std"],
                 len(s["returns"]), js_columns(js, name))
    if "paired" in js:
        log.info("  paired: %d training-env states rendered clean and shifted; latent distance between two clean "
                 "states %.3f%s", js["paired"]["states"], js["paired"]["latent_distance_scale"],
                 "".join(f"; {env} skipped: {why}" for env, why in js["paired"]["skipped"].items()))
    return {"envs": {name: {"return_mean": s["return_mean"], "return_std": s["return_std"]}
                     for name, s in summary.items()}, "references": references, "js": js.get("divergence")}
