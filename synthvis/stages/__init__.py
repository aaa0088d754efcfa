"""Pipeline stages by name, in the order DESIGN.md lists them."""

from synthvis.stages import agent, data, evaluate

STAGES = {
    "data": data.run,
    "agent": agent.run,
    "eval": evaluate.run,
}
