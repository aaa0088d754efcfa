"""Test helpers: synthetic episodes in the Episode row convention and config composition as train.py does it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synthvis.core.episode import Episode

# Data files written by the benchmarks' own code in their published formats (see fixtures/README.md).
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def make_episode(length: int, start_value: int = 0, action_dim: int = 2, size: int = 8, discrete: bool = False,
                 terminal: bool = False, seed: int = 0) -> Episode:
    """An episode whose frame t is filled with (start_value + t) % 256 and reward t is 0.1 * t (row 0: 0)."""
    rng = np.random.default_rng(seed)
    values = (start_value + np.arange(length)) % 256
    frames = np.broadcast_to(values[:, None, None, None], (length, 3, size, size)).astype(np.uint8)
    if discrete:
        action = rng.integers(0, 15, size=length).astype(np.int64)
        action[0] = 0
    else:
        action = rng.uniform(-1, 1, size=(length, action_dim)).astype(np.float32)
        action[0] = 0
    reward = (0.1 * np.arange(length)).astype(np.float32)
    discount = np.ones(length, dtype=np.float32)
    if terminal:
        discount[-1] = 0.0
    return Episode(frames=frames, action=action, reward=reward, discount=discount)


CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
# Every stage of the method at a tiny size (seconds per stage on a CPU): 32 px, 3 episodes, a few updates.
TINY_PIPELINE = ["image_size=32", "env.action_repeat=8", "data.source.num_episodes=3", "data.batch_size=16",
                 "agent.hidden_dim=64", "eval.num_episodes=2", "eval.test_envs.modes=[hard]",
                 "eval.test_envs.kinds=[color]", "agent_steps=10", "diffusion.steps=20", "finetune.steps=10",
                 "diffusion.model.denoiser.width=64", "sample=heun", "sample.num_samples=300", "sample.sampler.num_steps=8",
                 "callbacks.evaluation.every_n_updates=0", "finetune.datamodule.batch_size=32",
                 "trainer.log_every_n_steps=5"]


def compose_config(overrides: list[str], tmp_path: Path):
    """Compose conf/train.yaml as train.py would, with outputs and the data cache under `tmp_path`."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
        cfg.paths.data_dir = str(tmp_path / "data_cache")
        cfg.paths.log_dir = str(tmp_path / "logs")
    return cfg


def write_tiny_experiment(conf_dir: Path) -> None:
    """TINY_PIPELINE as a user's own experiment file <conf_dir>/experiment/tiny.yaml: its config group choices
    (sample=heun) in the defaults list, its values below."""
    from omegaconf import OmegaConf

    choices = [o for o in TINY_PIPELINE if (CONF_DIR / o.split("=", 1)[0]).is_dir()]
    values = OmegaConf.from_dotlist([o for o in TINY_PIPELINE if o not in choices])
    defaults = "".join(f"  - override /{o.replace('=', ': ', 1)}\n" for o in choices)
    (conf_dir / "experiment").mkdir(parents=True, exist_ok=True)
    (conf_dir / "experiment" / "tiny.yaml").write_text(
        f"# @package _global_\ndefaults:\n{defaults}\n{OmegaConf.to_yaml(values)}")
