"""Pipeline stages by name, in the order DESIGN.md lists them."""

from synthvis.stages import data

STAGES = {
    "data": data.run,
}
