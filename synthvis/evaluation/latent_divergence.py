"""Jensen-Shannon divergence between the training latents and the latents of every test env's frames."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from synthvis.core.latent_layout import LatentLayout
from synthvis.metrics.js_divergence import Binning, bin_edges, histogram_counts, js_from_counts

# The current-state trunk features; next-state features repeat them one step later.
LATENT_FIELDS = ("z_pi", "z_q")


@torch.no_grad()
def encode_observations(agent, observations: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Trunk features [z_pi, z_q] (those the agent has) of uint8 observations, through the frozen encoder."""
    chunks = []
    for start in range(0, len(observations), batch_size):
        obs = torch.from_numpy(observations[start:start + batch_size]).to(agent.device)
        latents = agent.latents(obs)
        chunks.append(torch.cat([latents[name] for name in LATENT_FIELDS if name in latents], dim=1).cpu())
    return torch.cat(chunks).numpy()


def trunk_features(layout: LatentLayout, rows: np.ndarray) -> np.ndarray:
    """The current-state trunk features [z_pi, z_q] (those the layout has) of packed latent rows."""
    unpacked = layout.unpack(rows)
    return np.concatenate([np.asarray(unpacked[name]) for name in LATENT_FIELDS if name in layout.names], axis=1)


def js_table(train_sets: dict[str, np.ndarray], test_sets: dict[str, np.ndarray], bins: int,
             binning: Binning = "quantile") -> dict[str, dict[str, float]]:
    """{train set: {test env: JS in bits}}, all cells on one binning per dimension from every set pooled."""
    pooled = torch.from_numpy(np.concatenate([*train_sets.values(), *test_sets.values()]))
    edges = bin_edges(pooled, bins, binning)
    # Each set is counted once on the shared edges (the same counts the Metric would hold given `edges`).
    train_counts = {name: histogram_counts(torch.from_numpy(x), edges) for name, x in train_sets.items()}
    test_counts = {env: histogram_counts(torch.from_numpy(x), edges) for env, x in test_sets.items()}
    return {name: {env: float(js_from_counts(counts, other).mean()) for env, other in test_counts.items()}
            for name, counts in train_counts.items()}


def heatmap_figure(table: dict[str, dict[str, float]]) -> Figure:
    """Train set x test env heatmap of the JS divergence (darker = more different)."""
    rows, columns = list(table), list(next(iter(table.values())))
    values = np.array([[table[r][c] for c in columns] for r in rows])
    figure = Figure(figsize=(1.3 * len(columns) + 2, 0.7 * len(rows) + 1.5))
    axes = figure.subplots()
    image = axes.imshow(values, cmap="Greys", vmin=0, vmax=max(values.max(), 1e-6))
    axes.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
    axes.set_yticks(range(len(rows)), rows)
    for (i, j), value in np.ndenumerate(values):
        axes.text(j, i, f"{value:.3f}", ha="center", va="center", color="red", fontsize=8)
    figure.colorbar(image, ax=axes, label="JS divergence (bits)")
    figure.tight_layout()
    return figure


def latent_divergence(train_sets: dict[str, np.ndarray], agent, observations: dict[str, np.ndarray], bins: int,
                      binning: Binning) -> dict[str, Any]:
    """The js.json payload: bins, the binning mode, and the table of `train_sets` x the agent's latents of every
    test env's `observations`."""
    test_sets = {env: encode_observations(agent, obs) for env, obs in observations.items() if len(obs)}
    return {"bins": bins, "binning": binning, "divergence": js_table(train_sets, test_sets, bins, binning)}
