"""The import graph points one way: core/utils at the bottom, then envs and metrics, then datamodules and
lightning_modules side by side, then evaluation, callbacks, stages and the entry points."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "synthvis"
# Rank of each part of synthvis: a module imports only its own part or parts of a lower rank.
RANKS = {"core": 0, "utils": 0, "envs": 1, "metrics": 1, "datamodules": 2, "lightning_modules": 2,
         "evaluation": 3, "callbacks": 4, "stages": 5}
TOP = 6  # pipeline.py, report.py, config_validation.py, ... (synthvis/*.py)
CONCRETE_AGENTS = {"synthvis.lightning_modules.actor_agent", "synthvis.lightning_modules.bc",
                   "synthvis.lightning_modules.drqbc", "synthvis.lightning_modules.discrete_cql"}


def part(module: str) -> str:
    """'datamodules' for synthvis.datamodules.pixel; the module name itself for synthvis/*.py."""
    return module.split(".")[1] if "." in module else module


def rank(module: str) -> int:
    return RANKS.get(part(module), TOP)


def synthvis_imports() -> dict[str, set[str]]:
    """{module: synthvis modules it imports}, from every import statement (those inside functions too)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(relative.parts[:-1] if relative.name == "__init__" else relative.parts)
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("synthvis"):
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names if alias.name.startswith("synthvis")}
        graph[module] = {name for name in imported if name != "synthvis"}
    return graph


def test_imports_point_down_the_layers():
    graph = synthvis_imports()
    assert "synthvis.core.latent_layout" in graph and "synthvis.evaluation.evaluator" in graph
    upward = sorted(f"{module} -> {name}" for module, names in graph.items() if module != "synthvis"
                    for name in names if part(name) != part(module) and rank(name) >= rank(module)
                    and not (rank(module) == TOP and rank(name) == TOP))
    assert not upward, "imports that point up or sideways:\n" + "\n".join(upward)


def test_datamodules_and_lightning_modules_do_not_import_each_other_and_envs_stand_alone():
    graph = synthvis_imports()
    for module, names in graph.items():
        if part(module) in ("datamodules", "lightning_modules", "envs"):
            others = {"datamodules": {"lightning_modules"}, "lightning_modules": {"datamodules"},
                      "envs": {"datamodules", "lightning_modules"}}[part(module)]
            assert not {part(name) for name in names} & others, (module, names)


def test_head_finetune_imports_no_concrete_agent():
    assert not synthvis_imports()["synthvis.lightning_modules.head_finetune"] & CONCRETE_AGENTS
