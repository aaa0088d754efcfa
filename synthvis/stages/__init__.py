"""Pipeline stages by name, in the order the pipeline runs them."""

from synthvis.stages import agent, data, diffusion, evaluate, finetune, latents, report, sample

STAGES = {
    "data": data.run,
    "agent": agent.run,
    "latents": latents.run,
    "diffusion": diffusion.run,
    "sample": sample.run,
    "finetune": finetune.run,
    "eval": evaluate.run,
    "report": report.run,
}

# The stages that fit a Lightning Trainer. Under DDP every rank runs them together; the other stages run on rank 0
# alone, and the other ranks read what they wrote (see pipeline.follow_stages).
TRAINING_STAGES = frozenset({"agent", "diffusion", "finetune"})
