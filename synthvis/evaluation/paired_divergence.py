"""The paired latent divergence: how far a visual shift alone moves the agent's latents of the same states.

The rollout measure (latent_divergence.py) compares training latents with latents of each test env's own rollouts,
so it mixes the visual shift with the shift in states the policy visits there. Here the states are held fixed: the
same training-env states observed clean and under each test env's shift (evaluation/paired_states.py), through the
same frozen encoder and trunks. Per test env: the JS divergence between the clean and the shifted latents, and the
mean L2 distance between the two latents of each state, read against the mean L2 distance between the latents of
two different clean states.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from synthvis.evaluation.latent_divergence import encode_observations
from synthvis.evaluation.paired_states import PairedObservations
from synthvis.metrics.js_divergence import Binning, js_divergence


def mean_pairwise_distance(latents: np.ndarray, chunk: int = 1024) -> float:
    """Mean L2 distance between the latents (N, D) of two different rows, over every pair i != j."""
    if len(latents) < 2:
        return float("nan")
    rows = torch.from_numpy(latents).double()
    # Chunks bound the memory at chunk x N distances; the zero diagonal adds nothing to the sum.
    total = sum(float(torch.cdist(rows[i:i + chunk], rows, compute_mode="donot_use_mm_for_euclid_dist").sum())
                for i in range(0, len(rows), chunk))
    return total / (len(rows) * (len(rows) - 1))


def paired_divergence(agent, pairs: PairedObservations, bins: int, binning: Binning) -> dict[str, Any]:
    """The js.json `paired` section: per test env the JS (bits) and mean latent distance of the pairs, the scale."""
    clean = encode_observations(agent, pairs.clean)
    divergence, distance = {}, {}
    for env, observations in pairs.shifted.items():
        shifted = encode_observations(agent, observations)
        divergence[env] = js_divergence(clean, shifted, bins, binning=binning)
        distance[env] = float(np.linalg.norm(shifted.astype(np.float64) - clean, axis=1).mean())
    return {"states": len(clean), "bins": bins, "binning": binning, "divergence": divergence,
            "latent_distance": distance, "latent_distance_scale": mean_pairwise_distance(clean),
            "skipped": pairs.skipped}
