"""The standard normalizer matches SynthER's statistics and round-trips."""

from __future__ import annotations

import pytest
import torch

from synthvis.core.normalizer import StandardNormalizer


def test_statistics_round_trip_and_skipped_terminal_dim():
    data = torch.randn(500, 4) * torch.tensor([1.0, 5.0, 0.1, 1.0]) + torch.tensor([3.0, -2.0, 0.0, 0.0])
    data[:, 3] = (torch.rand(500) > 0.9).float()  # terminal flags
    normalizer = StandardNormalizer.fit(data, skip_dims=[3])
    torch.testing.assert_close(normalizer.std[:3], data[:, :3].std(0) + 1e-5)  # unbiased, as torch.std
    normalized = normalizer.normalize(data)
    torch.testing.assert_close(normalized[:, :3].mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(normalized[:, 3], data[:, 3])  # terminal left in {0, 1}
    torch.testing.assert_close(normalizer.unnormalize(normalized), data, atol=1e-5, rtol=0)
    restored = StandardNormalizer(4)
    restored.load_state_dict(normalizer.state_dict())
    torch.testing.assert_close(restored.mean, normalizer.mean)


def test_bad_data_is_refused():
    with pytest.raises(ValueError, match="NaN"):
        StandardNormalizer.fit(torch.tensor([[1.0], [float("nan")]]))
    with pytest.raises(ValueError, match="at least 2 rows"):
        StandardNormalizer.fit(torch.zeros(1, 3))
