"""Head fine-tuning on latents: frozen encoder and trunks, heads trained from the base weights, the full agent."""

from __future__ import annotations

import copy
import dataclasses

import lightning as L
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from synthvis.core.latent_layout import LatentLayout, dmc_layout, procgen_layout
from synthvis.datamodules.frame_store import FrameStore
from synthvis.datamodules.transitions import TransitionDataset, valid_rows
from synthvis.datamodules.upsampled import UpsampledDataModule
from synthvis.lightning_modules.bc import BC
from synthvis.lightning_modules.discrete_cql import DiscreteCQL
from synthvis.lightning_modules.drqbc import DrQBC
from synthvis.lightning_modules.head_finetune import HeadFinetune
from synthvis.lightning_modules.offline_agent import OfflineAgent
from synthvis.stages.latents import extract_latents
from tests.helpers import CONF_DIR, make_episode

SIZE, ACTIONS = 24, 2
OBS = (9, SIZE, SIZE)
TINY = {"latent_dim": 8, "hidden_dim": 32}
PROCGEN_SIZE = 16
TINY_CQL = {"latent_dim": 16, "channels": (4, 8, 8)}
HEAD_PREFIXES = (
    "actor.policy.",
    "critic.Q1.",
    "critic.Q2.",
    "critic_target.Q1.",
    "critic_target.Q2.",
    "q.head.",
    "q_target.head.",
)
# HeadFinetune keeps its frozen modules in eval mode on purpose.
pytestmark = [
    pytest.mark.filterwarnings(r"ignore:Found \d+ module\(s\) in eval mode"),
    pytest.mark.usefixtures("one_thread"),
]


def real_latents(agent: OfflineAgent, tmp_path, discrete: bool = False) -> tuple[np.ndarray, LatentLayout]:
    """Latents of a few short episodes of noise frames, extracted through `agent`.

    Continuous actions are then replaced by a fixed function of z_pi, so there is a policy to learn.
    """
    size = PROCGEN_SIZE if discrete else SIZE
    rng = np.random.default_rng(0)
    episodes = [
        make_episode(12, action_dim=ACTIONS, size=size, discrete=discrete, terminal=discrete, seed=i)
        for i in range(4)
    ]
    episodes = [
        dataclasses.replace(episode, frames=rng.integers(0, 256, episode.frames.shape, dtype=np.uint8))
        for episode in episodes
    ]
    store = FrameStore.build(episodes, tmp_path / "store")
    stack, nstep = (1, 1) if discrete else (3, 3)
    dataset = TransitionDataset([(store, valid_rows(store, nstep))], stack, nstep=nstep, gamma=0.8)
    array, layout = extract_latents(agent, dataset, batch_size=16, progress=False)
    if not discrete:
        fields = layout.unpack(array)  # views: writing them writes the array
        fields["action"][:] = np.tanh(fields["z_pi"] @ rng.normal(0, 2, (fields["z_pi"].shape[1], ACTIONS)))
    return array, layout


def synthetic_like(real: np.ndarray, seed: int = 0) -> np.ndarray:
    """Noisy copies of the real rows: what a sampler produces, values out of range included."""
    rng = np.random.default_rng(seed)
    return (
        real[rng.integers(0, len(real), 3 * len(real))] + rng.normal(0, 0.3, (3 * len(real), real.shape[1]))
    ).astype(np.float32)


def frozen_state(agent: OfflineAgent) -> dict[str, torch.Tensor]:
    """Copies of every parameter and buffer outside the heads and their targets."""
    return {
        name: value.detach().clone()
        for name, value in agent.state_dict().items()
        if not name.startswith(HEAD_PREFIXES)
    }


class Record(L.Callback):
    """The metrics every update returns, and the train/eval modes seen during training."""

    def __init__(self, *names: str) -> None:
        self.values = {name: [] for name in names}
        self.modes: set[tuple[bool, bool]] = set()

    def on_train_batch_end(self, trainer, pl_module, outputs, *args) -> None:
        for name, values in self.values.items():
            values.append(float(outputs[name]))
        self.modes.add((pl_module.agent.encoder.training, next(iter(pl_module.heads.values())).training))


def fit(module: HeadFinetune, datamodule: UpsampledDataModule, steps: int, record: Record) -> L.Trainer:
    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[record],
    )
    trainer.fit(module, datamodule=datamodule)
    return trainer


def early_late(values: list[float], k: int = 20) -> tuple[float, float]:
    return float(np.mean(values[:k])), float(np.mean(values[-k:]))


def test_drqbc_finetune_trains_heads_from_base_weights_and_keeps_trunks_frozen(tmp_path):
    torch.manual_seed(0)
    agent = DrQBC(OBS, ACTIONS, **TINY)
    real, layout = real_latents(agent, tmp_path)
    assert layout.discount == pytest.approx(0.8**3)
    base = copy.deepcopy(agent)
    frozen = frozen_state(agent)
    assert {name.split(".")[0] for name in frozen} == {"encoder", "actor", "critic", "critic_target"}
    assert any(name.startswith("critic_target.trunk.") for name in frozen)

    module = HeadFinetune(agent, layout, lr=1e-3, base_updates=125_000)
    assert module.heads["policy"] is agent.actor.policy and module.heads["q1"] is agent.critic.Q1
    for name, value in base.state_dict().items():  # continued from the base weights, not re-initialized
        assert torch.equal(agent.state_dict()[name], value)
    assert not any(p.requires_grad for p in agent.encoder.parameters())
    assert all(p.requires_grad for p in agent.critic.Q2.parameters())

    record = Record("finetune/critic_loss", "finetune/actor_loss", "finetune/bc_loss", "finetune/actor_std")
    data = UpsampledDataModule(real, synthetic_like(real), layout, batch_size=32, synthetic_ratio=0.5, seed=0)
    trainer = fit(module, data, 300, record)

    assert trainer.global_step == 300  # one step per update, though each update steps two optimizers
    assert record.modes == {(False, True)}  # frozen parts in eval mode, heads in train mode
    for name, value in frozen.items():
        assert torch.equal(agent.state_dict()[name], value), f"{name} changed"
    for name in ("actor.policy", "critic.Q1", "critic.Q2", "critic_target.Q1", "critic_target.Q2"):
        before, after = base.get_submodule(name), agent.get_submodule(name)
        assert any(not torch.equal(p, q) for p, q in zip(before.parameters(), after.parameters())), (
            f"{name} unchanged"
        )
    trained = {id(p) for opt in trainer.optimizers for group in opt.param_groups for p in group["params"]}
    assert trained == {id(p) for head in module.heads.values() for p in head.parameters()}
    assert record.values["finetune/actor_std"] == pytest.approx(
        [0.1] * 300
    )  # sigma continues from update 125k
    for name in ("finetune/critic_loss", "finetune/bc_loss"):
        early, late = early_late(record.values[name])
        assert late < 0.7 * early, (name, early, late)
    assert (
        early_late(record.values["finetune/actor_loss"])[1]
        < early_late(record.values["finetune/actor_loss"])[0]
    )

    full = module.full_agent()
    assert full is agent and isinstance(full, OfflineAgent)
    obs = torch.randint(0, 256, (4, *OBS), dtype=torch.uint8)
    action = full.act(obs)
    assert action.shape == (4, ACTIONS) and action.abs().max() <= 1
    assert not torch.allclose(action, base.act(obs))  # the fine-tuned policy acts
    torch.testing.assert_close(full.latents(obs)["z_q"], base.latents(obs)["z_q"], rtol=0, atol=0)
    torch.testing.assert_close(module.act(obs), action)


def test_bc_finetune_on_real_latents_only(tmp_path):
    torch.manual_seed(1)
    agent = BC(OBS, ACTIONS, **TINY)
    real, layout = real_latents(agent, tmp_path)
    frozen = frozen_state(agent)
    base_policy = copy.deepcopy(agent.actor.policy)
    record = Record("finetune/bc_loss")
    data = UpsampledDataModule(real, None, layout, batch_size=32, synthetic_ratio=0.0, seed=0)
    fit(HeadFinetune(agent, layout, lr=1e-3, base_updates=125_000), data, 150, record)
    assert all(torch.equal(agent.state_dict()[name], value) for name, value in frozen.items())
    assert not torch.equal(agent.actor.policy[0].weight, base_policy[0].weight)
    early, late = early_late(record.values["finetune/bc_loss"])
    assert late < 0.7 * early


def test_cql_finetune_on_decoded_synthetic_latents(tmp_path):
    torch.manual_seed(2)
    agent = DiscreteCQL((3, PROCGEN_SIZE, PROCGEN_SIZE), target_update_every=10, **TINY_CQL)
    real, layout = real_latents(agent, tmp_path, discrete=True)
    assert layout == procgen_layout(16, 15, discount=0.8)
    synthetic = synthetic_like(real)
    decoded = layout.decode(synthetic)
    assert decoded["action"].dtype == np.int64 and ((decoded["action"] >= 0) & (decoded["action"] < 15)).all()
    assert set(np.unique(decoded["done"]).tolist()) <= {0.0, 1.0}
    frozen = frozen_state(agent)
    base_head = copy.deepcopy(agent.q.head)
    record = Record("finetune/loss", "finetune/td_loss", "finetune/cql_loss")
    module = HeadFinetune(agent, layout, lr=1e-3)
    trainer = fit(module, UpsampledDataModule(real, synthetic, layout, batch_size=32, seed=0), 101, record)
    assert trainer.global_step == 101
    assert all(torch.equal(agent.state_dict()[name], value) for name, value in frozen.items())
    assert not torch.equal(agent.q.head.weight, base_head.weight)
    # Hard copies after updates 1, 11, ..., 101: the target head equals the online head at the end.
    assert torch.equal(agent.q_target.head.weight, agent.q.head.weight)
    assert all(np.isfinite(v) for v in record.values["finetune/loss"])
    early, late = early_late(record.values["finetune/loss"])
    assert late < early
    obs = torch.randint(0, 256, (5, 3, PROCGEN_SIZE, PROCGEN_SIZE), dtype=torch.uint8)
    action = module.full_agent().act(obs)
    assert action.dtype == torch.int64 and ((action >= 0) & (action < 15)).all() and module.discrete


def test_finetune_rejects_a_layout_that_is_not_the_agents():
    agent = DrQBC(OBS, ACTIONS, **TINY)
    with pytest.raises(ValueError, match="does not match"):
        HeadFinetune(agent, dmc_layout(16, ACTIONS, discount=0.97))
    with pytest.raises(ValueError, match="does not match"):
        HeadFinetune(agent, procgen_layout(8, 15))
    layout = dmc_layout(8, ACTIONS)
    module = HeadFinetune(agent, layout)
    with pytest.raises(ValueError, match="discount"):
        fit(module, UpsampledDataModule(np.zeros((64, layout.dim), np.float32), None, layout, batch_size=8,
                                        synthetic_ratio=0.0), 1, Record("finetune/critic_loss"))


def test_configs_instantiate_with_a_layout_object(tmp_path):
    # The group files on their own (train.yaml's defaults list is the stages' business); Hydra's instantiate
    # turns a dataclass argument into a DictConfig, which the modules take back as a layout.
    cfg = OmegaConf.create(
        {
            "seed": 3,
            "finetune": OmegaConf.load(CONF_DIR / "finetune" / "default.yaml"),
            "diffusion": OmegaConf.load(CONF_DIR / "diffusion" / "resmlp.yaml"),
            "sample": OmegaConf.load(CONF_DIR / "sample" / "base" / "draws.yaml"),
            "latents": OmegaConf.load(CONF_DIR / "latents" / "default.yaml"),
        }
    )
    agent = DrQBC(OBS, ACTIONS, **TINY)
    layout = dmc_layout(8, ACTIONS, discount=0.97)
    rows = np.zeros((300, layout.dim), np.float32)
    module = instantiate(cfg.finetune.module, agent=agent, layout=layout, base_updates=10)
    assert module.layout == layout and module.agent is agent and module.hparams.base_updates == 10
    data = instantiate(cfg.finetune.datamodule, real=rows, synthetic=rows, layout=layout)
    assert (data.num_real, data.num_synthetic, data.seed) == (128, 128, 3)
    latents = instantiate(cfg.diffusion.datamodule, data=rows, layout=layout)
    latents.setup()
    assert latents.layout == layout and latents.batch_size == 256
    assert cfg.sample.num_samples > 0 and cfg.latents.augmented_views == 0
