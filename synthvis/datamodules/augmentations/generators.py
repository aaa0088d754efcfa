"""Seeded random-number generators that live on the batch's device."""

from __future__ import annotations

import torch


class SeededGenerators:
    """One `torch.Generator` per device, each started from the same seed, created on first use.

    Parameters are drawn with the generator of the pixels' device, so a GPU batch never waits on the CPU global
    RNG and never copies parameters host-to-device (kornia's own augmentations draw on the CPU); what the host must
    know (how many transitions each op gets) is drawn with the CPU's generator.
    """

    def __init__(self, seed: int | None = None) -> None:
        self._seed = seed
        self._generators: dict[torch.device, torch.Generator] = {}

    def seed(self, seed: int) -> None:
        """Restart every device's stream from `seed`."""
        self._seed = seed
        self._generators.clear()

    def __getstate__(self) -> dict:
        # torch.Generator objects cannot cross a process spawn (DDP spawn, DataLoader workers); the seed can.
        return {"_seed": self._seed, "_generators": {}}

    def __call__(self, device: torch.device) -> torch.Generator:
        """The generator on `device`, created and seeded the first time that device is seen.

        Under torch.distributed each rank offsets the seed by its rank, so ranks draw independent parameters.
        """
        if device not in self._generators:
            if self._seed is None:
                # Taken once from the global RNG, so `L.seed_everything` still makes an unseeded run reproducible.
                self._seed = int(torch.randint(0, 2**62, (1,)).item())
            rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
            self._generators[device] = torch.Generator(device=device).manual_seed(self._seed + rank)
        return self._generators[device]
