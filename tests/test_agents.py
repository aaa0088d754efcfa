"""Offline agents: network shapes, losses against hand computations, training on tiny datasets, checkpoints."""

from __future__ import annotations

import copy
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn
from torch.utils.data import DataLoader, Dataset

from synthvis.core.batches import ContinuousBatch, DiscreteBatch
from synthvis.datamodules.augmentations.random_shift import RandomShift
from synthvis.lightning_modules.bc import BC
from synthvis.lightning_modules.components.drq_encoder import DrQEncoder
from synthvis.lightning_modules.components.procgen_q import ProcgenQNetwork
from synthvis.lightning_modules.components.std_schedule import StdSchedule
from synthvis.lightning_modules.components.truncated_normal import TruncatedNormal
from synthvis.lightning_modules.discrete_cql import DiscreteCQL, cql_loss
from synthvis.lightning_modules.drqbc import DrQBC
from tests.helpers import CONF_DIR

OBS = (9, 24, 24)  # 3 stacked RGB frames at 24 px: DrQ repr_dim = 32 * 5 * 5 = 800
PROCGEN_OBS = (3, 16, 16)  # IMPALA: 16 -> 8 -> 4 -> 2 px; with TINY_CQL channels 8 * 2 * 2 = 32
ACTIONS = 2
TINY = {"latent_dim": 8, "hidden_dim": 32}
TINY_CQL = {"latent_dim": 16, "channels": (4, 8, 8)}


pytestmark = pytest.mark.usefixtures("one_thread")


class Transitions(Dataset):
    """A fixed list of transitions, collated by the default collate into the batch NamedTuple."""

    def __init__(self, batch: ContinuousBatch | DiscreteBatch) -> None:
        self.batch = batch

    def __len__(self) -> int:
        return len(self.batch.obs)

    def __getitem__(self, index: int) -> ContinuousBatch | DiscreteBatch:
        return type(self.batch)(*(field[index] for field in self.batch))


def continuous_batch(n: int, seed: int = 0) -> ContinuousBatch:
    g = torch.Generator().manual_seed(seed)
    return ContinuousBatch(
        obs=torch.randint(0, 256, (n, *OBS), generator=g, dtype=torch.uint8),
        action=torch.rand(n, ACTIONS, generator=g) * 2 - 1,
        reward=torch.rand(n, generator=g),
        discount=torch.full((n,), 0.99**3),
        next_obs=torch.randint(0, 256, (n, *OBS), generator=g, dtype=torch.uint8),
    )


def discrete_batch(n: int, seed: int = 0) -> DiscreteBatch:
    g = torch.Generator().manual_seed(seed)
    done = (torch.rand(n, generator=g) < 0.2).float()
    next_obs = torch.randint(0, 256, (n, *PROCGEN_OBS), generator=g, dtype=torch.uint8)
    return DiscreteBatch(
        obs=torch.randint(0, 256, (n, *PROCGEN_OBS), generator=g, dtype=torch.uint8),
        action=torch.randint(0, 15, (n,), generator=g),
        reward=torch.rand(n, generator=g),
        next_obs=next_obs * (1 - done[:, None, None, None]).to(torch.uint8),
        done=done,
    )


def loader(batch: ContinuousBatch | DiscreteBatch, batch_size: int, shuffle: bool = False) -> DataLoader:
    return DataLoader(Transitions(batch), batch_size=batch_size, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(0))


def fit(agent: L.LightningModule, data: DataLoader, steps: int, callbacks: list | None = None,
        val: DataLoader | None = None) -> L.Trainer:
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks or [],
                        limit_val_batches=1 if val is not None else 0, num_sanity_val_steps=0,
                        val_check_interval=steps if val is not None else None, check_val_every_n_epoch=None)
    trainer.fit(agent, data, val)
    return trainer


class Record(L.Callback):
    """Collects the named metrics every update returns."""

    def __init__(self, *names: str) -> None:
        self.names, self.values = names, {name: [] for name in names}

    def on_train_batch_end(self, trainer, pl_module, outputs, *args) -> None:
        for name in self.names:
            self.values[name].append(float(outputs[name]))


def early_late(values: list[float], k: int = 10) -> tuple[float, float]:
    return sum(values[:k]) / k, sum(values[-k:]) / k


# --- hand computations ------------------------------------------------------------------------------------
def linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return x @ layer.weight.T + layer.bias


def mlp_by_hand(mlp: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    first, _, second, _, third = mlp
    return linear(third, torch.relu(linear(second, torch.relu(linear(first, x)))))


def trunk_by_hand(trunk: nn.Sequential, h: torch.Tensor) -> torch.Tensor:
    fc, norm, _ = trunk
    y = linear(fc, h)
    y = (y - y.mean(-1, keepdim=True)) / torch.sqrt(y.var(-1, unbiased=False, keepdim=True) + norm.eps)
    return torch.tanh(y * norm.weight + norm.bias)


def min_q_by_hand(critic: nn.Module, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    za = torch.cat([z, action], dim=-1)
    return torch.min(mlp_by_hand(critic.Q1, za), mlp_by_hand(critic.Q2, za)).squeeze(1)


def truncated_sample_by_hand(mean: torch.Tensor, std: float, clip: float) -> torch.Tensor:
    noise = torch.clamp(std * torch.randn(mean.shape), -clip, clip)
    return torch.clamp(mean + noise, -1 + 1e-6, 1 - 1e-6)


def perturb_(module: nn.Module, scale: float = 0.1) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))


# --- shapes -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("size", "expected"), [(84, 39200), (64, 20000), (24, 800)])
def test_drq_encoder_repr_dim_follows_the_image_size(size, expected):
    encoder = DrQEncoder((9, size, size))
    assert encoder.repr_dim == 32 * ((size - 3) // 2 - 5) ** 2 == expected
    if size == 24:
        assert encoder(torch.zeros(2, 9, size, size, dtype=torch.uint8)).shape == (2, expected)


def test_procgen_q_network_shapes_and_gen_dgrl_sizes():
    net = ProcgenQNetwork((3, 64, 64), latent_dim=256)
    assert net.encoder.repr_dim == 2048  # gen_dgrl's hard-coded Linear(2048, hidden_size)
    assert net.trunk[1].in_features == 2048
    obs = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    assert net(obs).shape == (2, 15)
    assert ProcgenQNetwork(PROCGEN_OBS, **TINY_CQL).encoder.repr_dim == 32


@pytest.mark.parametrize("agent_cls", [DrQBC, BC])
def test_continuous_agents_latents_act_and_heads(agent_cls):
    agent = agent_cls(OBS, ACTIONS, **TINY)
    obs = continuous_batch(5).obs
    latents = agent.latents(obs)
    assert set(latents) == ({"z_pi", "z_q"} if agent_cls is DrQBC else {"z_pi"})
    for z in latents.values():
        assert z.shape == (5, TINY["latent_dim"]) and z.dtype == torch.float32
        assert z.abs().max() < 1  # tanh
    for deterministic in (True, False):
        action = agent.act(obs, deterministic=deterministic)
        assert action.shape == (5, ACTIONS) and action.dtype == torch.float32
        assert action.abs().max() < 1
    expected = {"policy", "q1", "q2"} if agent_cls is DrQBC else {"policy"}
    assert set(agent.heads()) == expected
    assert agent.heads()["policy"] is agent.actor.policy
    assert not agent.discrete


def test_discrete_cql_latents_act_and_heads():
    agent = DiscreteCQL(PROCGEN_OBS, **TINY_CQL)
    obs = discrete_batch(5).obs
    z_q = agent.latents(obs)["z_q"]
    assert z_q.shape == (5, 16) and (z_q >= 0).all()  # ReLU(fc(.))
    action = agent.act(obs)
    assert action.shape == (5,) and action.dtype == torch.int64 and ((0 <= action) & (action < 15)).all()
    assert set(agent.heads()) == {"q"} and agent.heads()["q"] is agent.q.head
    assert agent.encoder is agent.q.encoder and agent.discrete
    torch.testing.assert_close(agent.heads()["q"](z_q), agent.q(obs))


# --- building blocks --------------------------------------------------------------------------------------
def test_truncated_normal_clips_noise_and_clamps_straight_through():
    loc = torch.tensor([0.0, 0.99, -0.99]).repeat(1000, 1).requires_grad_()
    sample = TruncatedNormal(loc, torch.full_like(loc, 1.0)).sample(clip=0.3)
    assert (sample - loc).abs().max() <= 0.3 + 1e-6
    assert sample.abs().max() <= 1 - 1e-6
    sample.sum().backward()
    torch.testing.assert_close(loc.grad, torch.ones_like(loc))  # the clamp passes gradients through


def test_std_schedule_is_v_d4rl_linear():
    schedule = StdSchedule("linear(1.0,0.1,250000)")
    assert schedule(0) == 1.0 and schedule(125000) == pytest.approx(0.55) and schedule(10**7) == pytest.approx(0.1)
    assert StdSchedule(0.2)(5) == StdSchedule("0.2")(10**6) == 0.2
    with pytest.raises(ValueError, match="linear"):
        StdSchedule("cosine(1,0)")


# --- DrQ+BC -----------------------------------------------------------------------------------------------
class SeedBeforeStep(L.Callback):
    """Fixes the policy noise of the next training step."""

    def on_train_batch_start(self, *args) -> None:
        torch.manual_seed(1234)


def test_drqbc_update_matches_a_hand_computation():
    torch.manual_seed(0)
    agent = DrQBC(OBS, ACTIONS, std_schedule=0.5, **TINY)  # no augmentation: the batch is seen as is
    perturb_(agent.critic_target)  # so that using the online critic for the target would be caught
    perturb_(agent.critic.trunk[1])  # a non-trivial LayerNorm affine
    before = copy.deepcopy(agent)
    batch = continuous_batch(8)
    fit(agent, loader(batch, 8), steps=1, callbacks=[SeedBeforeStep()])
    logged = agent.trainer.callback_metrics

    torch.manual_seed(1234)
    with torch.no_grad():
        h, next_h = before.encoder(batch.obs), before.encoder(batch.next_obs)
        # Critic: a' ~ TruncN(tanh(policy(actor.trunk(h'))), 0.5, clip 0.3); y = r + discount * min Q_target(h', a').
        next_action = truncated_sample_by_hand(
            torch.tanh(mlp_by_hand(before.actor.policy, trunk_by_hand(before.actor.trunk, next_h))), 0.5, 0.3)
        y = batch.reward + batch.discount * min_q_by_hand(
            before.critic_target, trunk_by_hand(before.critic_target.trunk, next_h), next_action)
        za = torch.cat([trunk_by_hand(before.critic.trunk, h), batch.action], dim=-1)
        q1, q2 = mlp_by_hand(before.critic.Q1, za).squeeze(1), mlp_by_hand(before.critic.Q2, za).squeeze(1)
        critic_loss = ((q1 - y) ** 2).mean() + ((q2 - y) ** 2).mean()
        # Actor: on h (pre-update encoder) with the critic as it is after its own step (the actor step leaves it).
        sampled = truncated_sample_by_hand(
            torch.tanh(mlp_by_hand(before.actor.policy, trunk_by_hand(before.actor.trunk, h))), 0.5, 0.3)
        q = min_q_by_hand(agent.critic, trunk_by_hand(agent.critic.trunk, h), sampled)
        lam = 2.5 / q.abs().mean()
        actor_loss = -lam * q.mean() + ((sampled - batch.action) ** 2).mean()

    for name, value in [("critic_target_q", y.mean()), ("critic_loss", critic_loss), ("bc_lambda", lam),
                        ("actor_loss", actor_loss), ("actor_std", 0.5)]:
        torch.testing.assert_close(logged[f"train/{name}"], torch.as_tensor(value), rtol=1e-4, atol=1e-5)


def test_drqbc_soft_updates_the_whole_target_critic_by_tau():
    agent = DrQBC(OBS, ACTIONS, critic_target_tau=0.01, **TINY)
    perturb_(agent.critic_target)
    target_before = copy.deepcopy(agent.critic_target)
    fit(agent, loader(continuous_batch(8), 8), steps=1)
    for (name, old), new, online in zip(target_before.named_parameters(), agent.critic_target.parameters(),
                                        agent.critic.parameters(), strict=True):
        torch.testing.assert_close(new, 0.99 * old + 0.01 * online, msg=name)
    assert any(name.startswith("trunk") for name, _ in target_before.named_parameters())


def test_drqbc_encoder_is_trained_by_the_critic_loss_only():
    agent = DrQBC(OBS, ACTIONS, augmentation=RandomShift(pad=2), **TINY)
    calls = {"encoder": 0, "actor": 0, "critic_trunk": 0}
    for key, module in [("encoder", agent.encoder), ("actor", agent.actor), ("critic_trunk", agent.critic.trunk)]:
        for p in module.parameters():
            p.register_hook(lambda grad, key=key: calls.__setitem__(key, calls[key] + 1))
    updates = 3
    trainer = fit(agent, loader(continuous_batch(8), 8), steps=updates)
    # One gradient per parameter per update: the encoder and the critic trunk from the critic loss, the actor
    # from the actor loss (a' for the target is drawn without grad).
    assert calls == {"encoder": updates * len(list(agent.encoder.parameters())),
                     "actor": updates * len(list(agent.actor.parameters())),
                     "critic_trunk": updates * len(list(agent.critic.trunk.parameters()))}
    encoder_opt, actor_opt, critic_opt = trainer.optimizers
    owned = {name: {id(p) for group in opt.param_groups for p in group["params"]}
             for name, opt in [("encoder", encoder_opt), ("actor", actor_opt), ("critic", critic_opt)]}
    assert owned["encoder"] == {id(p) for p in agent.encoder.parameters()}
    assert not owned["encoder"] & (owned["actor"] | owned["critic"])
    assert trainer.global_step == updates  # one step per update, although three optimizers step


def test_drqbc_losses_decrease_on_a_tiny_dataset():
    torch.manual_seed(0)
    agent = DrQBC(OBS, ACTIONS, std_schedule="linear(1.0,0.1,100)", augmentation=RandomShift(pad=2), **TINY)
    record = Record("train/critic_loss", "train/actor_loss", "train/actor_std")
    val = loader(continuous_batch(8, seed=1), 8)
    trainer = fit(agent, loader(continuous_batch(32), 16, shuffle=True), steps=100, callbacks=[record], val=val)
    early, late = early_late(record.values["train/critic_loss"])
    assert late < 0.5 * early, (early, late)
    # -lambda * mean(Q) lies in [-2.5, 2.5]: the actor drives it towards -2.5 while keeping the BC term small.
    early, late = early_late(record.values["train/actor_loss"])
    assert late < early < 0, (early, late)
    assert record.values["train/actor_std"][0] == 1.0
    assert record.values["train/actor_std"][-1] == pytest.approx(StdSchedule("linear(1.0,0.1,100)")(99))
    assert {"val/bc_mse", "val/critic_loss", "val/q_mean"} <= set(trainer.callback_metrics)


# --- BC ---------------------------------------------------------------------------------------------------
def test_bc_overfits_a_fixed_dataset():
    torch.manual_seed(0)
    agent = BC(OBS, ACTIONS, lr=1e-3, std_schedule=0.1, **TINY)
    batch = continuous_batch(16)
    before = F.mse_loss(agent.act(batch.obs), batch.action)
    trainer = fit(agent, loader(batch, 16), steps=150, val=loader(batch, 16))
    after = F.mse_loss(agent.act(batch.obs), batch.action)
    assert after < 0.05 < before, (before, after)
    torch.testing.assert_close(trainer.callback_metrics["val/bc_mse"], after)
    assert trainer.global_step == 150


# --- discrete CQL -----------------------------------------------------------------------------------------
def test_cql_loss_by_hand():
    q = torch.tensor([[1.0, 2.0, 0.0], [0.5, -1.0, 3.0]], requires_grad=True)
    next_online = torch.tensor([[0.0, 5.0, 1.0], [2.0, 0.0, 1.0]])  # argmax: 1, 0
    next_target = torch.tensor([[7.0, 3.0, 1.0], [4.0, 9.0, 1.0]])  # picks 3.0, 4.0
    action, reward, done = torch.tensor([0, 2]), torch.tensor([1.0, 0.5]), torch.tensor([0.0, 1.0])
    loss, metrics = cql_loss(q, action, reward, done, next_online, next_target, gamma=0.9, alpha=4.0)
    y = torch.tensor([1.0 + 0.9 * 3.0, 0.5])  # done zeroes the bootstrap
    q_taken = torch.tensor([1.0, 3.0])
    huber = F.smooth_l1_loss(q_taken, y)
    conservative = 4.0 * (torch.logsumexp(q.detach(), 1) - q_taken).mean()
    torch.testing.assert_close(metrics["td_loss"], huber)
    torch.testing.assert_close(metrics["cql_loss"], conservative)
    torch.testing.assert_close(loss, huber + conservative)
    assert metrics["cql_loss"] >= 0


class TargetSnapshots(L.Callback):
    """Before each update: the update index and whether the target net equals the online net."""

    def __init__(self) -> None:
        self.equal: list[bool] = []

    def on_train_batch_start(self, trainer, agent, *args) -> None:
        assert trainer.global_step == len(self.equal)
        self.equal.append(all(torch.equal(a, b) for a, b in zip(agent.q.state_dict().values(),
                                                                agent.q_target.state_dict().values(), strict=True)))


def test_discrete_cql_trains_and_copies_the_target_every_n_updates():
    torch.manual_seed(0)
    agent = DiscreteCQL(PROCGEN_OBS, lr=1e-3, target_update_every=5, **TINY_CQL)
    record, snapshots = Record("train/loss", "train/cql_loss", "train/td_loss"), TargetSnapshots()
    trainer = fit(agent, loader(discrete_batch(32), 16, shuffle=True), steps=60, callbacks=[record, snapshots],
                  val=loader(discrete_batch(8, seed=1), 8))
    early, late = early_late(record.values["train/loss"])
    assert late < 0.7 * early, (early, late)
    assert min(record.values["train/cql_loss"]) >= 0
    # gen_dgrl copies after updates 1, N + 1, 2N + 1, ...: before update k the target equals the online net
    # exactly when update k - 1 ended with a copy (k = 0: the initial copy).
    assert snapshots.equal == [k == 0 or (k - 1) % 5 == 0 for k in range(60)]
    assert {"val/loss", "val/td_loss", "val/cql_loss"} <= set(trainer.callback_metrics)


# --- checkpoints and configs ------------------------------------------------------------------------------
@pytest.mark.parametrize("agent_cls", [DrQBC, BC, DiscreteCQL])
def test_checkpoint_round_trip_on_cpu(agent_cls, tmp_path: Path):
    torch.manual_seed(0)
    if agent_cls is DiscreteCQL:
        agent, batch = DiscreteCQL(PROCGEN_OBS, **TINY_CQL), discrete_batch(8)
    else:
        agent, batch = agent_cls(OBS, ACTIONS, augmentation=RandomShift(pad=2), **TINY), continuous_batch(8)
    trainer = fit(agent, loader(batch, 8), steps=2)
    trainer.save_checkpoint(tmp_path / "agent.ckpt")
    loaded = agent_cls.load_from_checkpoint(tmp_path / "agent.ckpt", map_location="cpu")
    assert torch.equal(loaded.act(batch.obs), agent.act(batch.obs))
    for name, z in agent.latents(batch.obs).items():
        assert torch.equal(loaded.latents(batch.obs)[name], z)
    assert torch.load(tmp_path / "agent.ckpt", map_location="cpu", weights_only=False)["global_step"] == 2


@pytest.mark.parametrize(("option", "agent_cls", "shape", "actions"),
                         [("drqbc", DrQBC, OBS, ACTIONS), ("bc", BC, OBS, ACTIONS),
                          ("cql", DiscreteCQL, PROCGEN_OBS, 15)])
def test_agent_configs_instantiate_with_the_stage_fields(option, agent_cls, shape, actions):
    cfg = OmegaConf.create({"latent_dim": 16, "agent": OmegaConf.load(CONF_DIR / "agent" / f"{option}.yaml")})
    cfg.agent.obs_shape, cfg.agent.action_dim = list(shape), actions
    if agent_cls is not DiscreteCQL:
        cfg.agent.hidden_dim = 32
    agent = instantiate(cfg.agent)
    assert isinstance(agent, agent_cls)
    assert agent.hparams.latent_dim == 16 and tuple(agent.hparams.obs_shape) == shape
    assert isinstance(agent.augmentation, RandomShift if agent_cls is not DiscreteCQL else type(None))
