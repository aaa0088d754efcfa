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
