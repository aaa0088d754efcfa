"""The dataset formats: the published-format fixtures in tests/fixtures, round trips, atomic writes and every bad input."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest

from synthvis.datamodules.formats import (
    DatasetError,
    Episode,
    detect_format,
    iter_episodes,
    vd4rl_hdf5,
    write_episodes,
)
from tests.helpers import make_episode

VD4RL = Path("vd4rl_data/main/cheetah_run/random")
COINRUN = Path("gen_dgrl/coinrun")
NPZ_NAME = "20220101T000000-0123456789abcdef-{}.npz"
GEN_DGRL_NAME = "20261122T101841_0_{}_7_0.30.npz"


def assert_same_episodes(actual: list[Episode], expected: list[Episode]) -> None:
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected):
        for name in ("frames", "action", "reward", "discount"):
            got_array, want_array = getattr(got, name), getattr(want, name)
            assert got_array.dtype == want_array.dtype, name
            np.testing.assert_array_equal(got_array, want_array, err_msg=name)
        assert got.level_seed == want.level_seed


# --- the published-format fixtures -------------------------------------------------------------------------------


def test_vd4rl_npz_fixture(published_fixtures: Path) -> None:
    folder = published_fixtures / VD4RL / "64px"
    assert detect_format(folder) == "vd4rl_npz"
    episodes = list(iter_episodes(folder))
    assert [round(episode.episode_return, 2) for episode in episodes] == [4.06, 8.09]
    for episode, file in zip(episodes, sorted(folder.glob("*.npz")), strict=True):
        assert episode.frames.shape == (501, 3, 64, 64) and episode.frames.dtype == np.uint8
        assert episode.action.shape == (501, 6) and episode.action.dtype == np.float32
        assert not episode.action[0].any() and episode.reward[0] == 0
        assert (episode.discount == 1).all() and not episode.terminal and episode.level_seed is None
        with np.load(file) as raw:
            np.testing.assert_array_equal(episode.frames, raw["image"].transpose(0, 3, 1, 2))
            np.testing.assert_array_equal(episode.action, raw["action"])


def test_vd4rl_hdf5_fixture_holds_the_npz_episodes(published_fixtures: Path) -> None:
    folder = published_fixtures / VD4RL / "84px"
    assert detect_format(folder) == detect_format(folder / "data.hdf5") == "vd4rl_hdf5"
    episodes = list(iter_episodes(folder))
    npz_episodes = list(iter_episodes(published_fixtures / VD4RL / "64px", format="vd4rl_npz"))
    assert [len(episode) for episode in episodes] == [501, 501]
    for episode, twin in zip(episodes, npz_episodes, strict=True):
        assert episode.frames.shape == (501, 3, 84, 84) and episode.frames.dtype == np.uint8
        for name in ("action", "reward", "discount"):
            np.testing.assert_array_equal(getattr(episode, name), getattr(twin, name))
    assert [round(episode.episode_return, 2) for episode in episodes] == [4.06, 8.09]


def test_vd4rl_hdf5_streams_one_episode_at_a_time(published_fixtures: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[tuple[str, object]] = []
    original = h5py.Dataset.__getitem__

    def spy(self: h5py.Dataset, key: object) -> np.ndarray:
        reads.append((self.name, key))
        return original(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    episodes = iter_episodes(published_fixtures / VD4RL / "84px")
    next(episodes)
    assert [key for name, key in reads if name == "/observation"] == [slice(0, 501)]
    next(episodes)
    assert [key for name, key in reads if name == "/observation"] == [slice(0, 501), slice(501, 1002)]


def test_gen_dgrl_fixture(published_fixtures: Path) -> None:
    folder = published_fixtures / COINRUN
    assert detect_format(folder) == "gen_dgrl"
    episodes = list(iter_episodes(folder))
    files = sorted(folder.glob("*.npz"))
    assert [episode.num_transitions for episode in episodes] == [185, 532, 1000]
    assert [episode.level_seed for episode in episodes] == [44, 33, 105]
    assert [episode.episode_return for episode in episodes] == [0.0, 10.0, 0.0]
    for episode, file in zip(episodes, files, strict=True):
        _, _, length, seed, total = file.stem.split("_")
        assert (episode.num_transitions, episode.level_seed) == (int(length), int(seed))
        assert round(episode.episode_return, 2) == float(total)
        assert episode.frames.shape == (int(length) + 1, 3, 64, 64) and episode.frames.dtype == np.uint8
        assert episode.discrete and episode.action.dtype == np.int64 and episode.action[0] == 0
        assert episode.terminal and (episode.discount[:-1] == 1).all()
        with np.load(file) as raw:
            np.testing.assert_array_equal(episode.frames, raw["observations"])  # float 0-255 -> same uint8 values
            np.testing.assert_array_equal(episode.action[1:], raw["actions"][:, 0])
            np.testing.assert_array_equal(episode.reward[1:], raw["rewards"][:, 0])


# --- round trips and writing -------------------------------------------------------------------------------------


def synthetic(discrete: bool, count: int = 11) -> list[Episode]:
    """Episodes of varied lengths, some terminal; more than 10 so index ordering in names matters."""
    episodes = [make_episode(3 + i % 4, start_value=20 * i, action_dim=3, discrete=discrete, terminal=i % 2 == 0,
                             seed=i) for i in range(count)]
    if discrete:
        for i, episode in enumerate(episodes):
            episode.level_seed = None if i == 1 else 100 + i
    return episodes


@pytest.mark.parametrize(("format", "discrete", "files"), [("vd4rl_hdf5", False, 1), ("vd4rl_npz", False, 11),
                                                            ("gen_dgrl", True, 11)])
def test_round_trip(tmp_path: Path, format: str, discrete: bool, files: int) -> None:
    episodes = synthetic(discrete)
    folder = tmp_path / "data"
    written = write_episodes(episodes, folder, format)
    assert len(written) == files and sorted(folder.iterdir()) == sorted(written) == written
    assert detect_format(folder) == format
    assert_same_episodes(list(iter_episodes(folder)), episodes)
    more = synthetic(discrete, count=2)
    second = write_episodes(more, folder, format)
    assert not set(second) & set(written)
    assert_same_episodes(list(iter_episodes(folder)), episodes + more)  # later writes sort after earlier ones


def test_vd4rl_hdf5_writes_v_d4rl_layout(tmp_path: Path) -> None:
    episodes = synthetic(discrete=False, count=3)
    (path,) = write_episodes(episodes, tmp_path, "vd4rl_hdf5", first_index=250)
    assert path.name == f"shard_250_reward_{np.mean([e.episode_return for e in episodes]):.1f}.hdf5"
    with h5py.File(path) as shard:
        assert shard["observation"].compression == "gzip"
        lengths = [len(episode) for episode in episodes]
        expected = np.concatenate([[0] + [1] * (length - 2) + [2] for length in lengths])
        np.testing.assert_array_equal(shard["step_type"][:], expected)
        np.testing.assert_array_equal(shard["observation"][:], np.concatenate([e.frames for e in episodes]))
    (lzf,) = vd4rl_hdf5.write_episodes(episodes, tmp_path, compression="lzf")
    assert lzf.name.startswith("shard_251_")
    with h5py.File(lzf) as shard:
        assert shard["observation"].compression == "lzf"
    assert_same_episodes(list(vd4rl_hdf5.read_episodes(lzf)), episodes)


def test_vd4rl_npz_writes_dreamer_layout(tmp_path: Path) -> None:
    episode = make_episode(5, terminal=True)
    (path,) = write_episodes([episode], tmp_path, "vd4rl_npz")
    assert path.name.endswith("-5.npz") and path.name[8] == "T" and len(path.name.split("-")[1]) == 32
    with np.load(path) as raw:
        assert raw["image"].shape == (5, 8, 8, 3)
        np.testing.assert_array_equal(raw["is_first"], [1, 0, 0, 0, 0])
        np.testing.assert_array_equal(raw["is_last"], [0, 0, 0, 0, 1])
        np.testing.assert_array_equal(raw["is_terminal"], [0, 0, 0, 0, 1])


def test_vd4rl_npz_back_fills_terminal_and_ignores_extra_keys(tmp_path: Path) -> None:
    path = vd4rl_file(tmp_path, is_terminal=None, discount=np.array([1, 1, 1, 1, 0], np.float32),
                      height=np.zeros((5, 1)), velocity=np.zeros((5, 9)))
    (episode,) = iter_episodes(path)
    assert episode.terminal


def test_gen_dgrl_writes_its_layout_and_reads_pickled_npy(tmp_path: Path) -> None:
    episode = make_episode(6, discrete=True, terminal=True)
    episode.level_seed = 42
    (path,) = write_episodes([episode], tmp_path / "npz", "gen_dgrl", first_index=7)
    total = episode.reward[1:].sum()
    assert path.name.endswith(f"_000007_5_42_{total:.2f}.npz")
    with np.load(path) as raw:
        arrays = {key: raw[key] for key in raw.files}
    assert arrays["observations"].shape == (6, 3, 8, 8) and arrays["observations"].dtype == np.uint8
    assert arrays["actions"].shape == (5, 1) and arrays["rewards"].shape == (5, 1)
    np.testing.assert_array_equal(arrays["dones"], [0, 0, 0, 0, 1])
    # torchrl's mirror: the same dict pickled into .npy, observations as float32 like the published data
    npy = tmp_path / "npy" / path.name.replace(".npz", ".npy")
    npy.parent.mkdir()
    np.save(npy, {**arrays, "observations": arrays["observations"].astype(np.float32)}, allow_pickle=True)
    assert detect_format(npy.parent) == "gen_dgrl"
    assert_same_episodes(list(iter_episodes(npy)), [episode])


def test_interrupted_write_leaves_only_complete_files(tmp_path: Path) -> None:
    def killed(discrete: bool) -> Iterator[Episode]:
        yield make_episode(4, discrete=discrete)
        raise KeyboardInterrupt

    for format, discrete in (("vd4rl_hdf5", False), ("vd4rl_npz", False), ("gen_dgrl", True)):
        folder = tmp_path / format
        with pytest.raises(KeyboardInterrupt):
            write_episodes(killed(discrete), folder, format)
        left = list(folder.iterdir())
        # One shard per call, so nothing of it remains; per-episode formats keep the finished first episode.
        assert len(left) == (0 if format == "vd4rl_hdf5" else 1)
        assert all(not path.name.startswith(".") for path in left)
        if left:
            assert len(list(iter_episodes(folder))) == 1


def test_readers_ignore_leftover_partial_files(published_fixtures: Path, tmp_path: Path) -> None:
    folder = tmp_path / "coinrun"
    shutil.copytree(published_fixtures / COINRUN, folder)
    (folder / ".partial-0123.tmp").write_bytes(b"half a file")
    (folder / "README.txt").write_text("not data")
    assert len(list(iter_episodes(folder))) == 3


@pytest.mark.parametrize(("format", "episode", "problem"), [
    ("vd4rl_hdf5", make_episode(4, discrete=True), "discrete actions"),
    ("vd4rl_npz", make_episode(4, discrete=True), "discrete actions"),
    ("gen_dgrl", make_episode(4), "continuous actions"),
    ("gen_dgrl", Episode(frames=np.zeros((3, 3, 8, 8), np.uint8), action=np.array([0, 20, 1]),
                         reward=np.zeros(3, np.float32), discount=np.ones(3, np.float32)), "holds action 20"),
    ("vd4rl_npz", make_episode(1), "1 row"),
    ("gen_dgrl", Episode(frames=np.zeros((3, 3, 8, 8), np.uint8), action=np.zeros(3, np.int64),
                         reward=np.array([1, 0, 0], np.float32), discount=np.ones(3, np.float32)), "row 0"),
    ("vd4rl_hdf5", Episode(frames=np.zeros((3, 3, 8, 8), np.float32) + 0.5, action=np.zeros((3, 2), np.float32),
                           reward=np.zeros(3, np.float32), discount=np.ones(3, np.float32)), "whole numbers"),
])
def test_writers_refuse_what_the_format_cannot_hold(tmp_path: Path, format: str, episode: Episode,
                                                    problem: str) -> None:
    with pytest.raises(DatasetError, match=re.escape(problem)):
        write_episodes([episode], tmp_path, format)
    assert list(tmp_path.iterdir()) == []


def test_writers_refuse_mixed_shapes_formats_and_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="earlier episodes"):
        write_episodes([make_episode(3, size=8), make_episode(3, size=16)], tmp_path, "vd4rl_hdf5")
    assert list(tmp_path.iterdir()) == []
    write_episodes([make_episode(3)], tmp_path, "vd4rl_hdf5")
    with pytest.raises(DatasetError, match="mix formats"):
        write_episodes([make_episode(3)], tmp_path, "vd4rl_npz")
    with pytest.raises(ValueError, match="unknown dataset format"):
        write_episodes([make_episode(3)], tmp_path, "minari")


# --- bad inputs --------------------------------------------------------------------------------------------------


def vd4rl_file(folder: Path, name: str | None = None, **changes: np.ndarray | None) -> Path:
    """A 5-row V-D4RL 64 px episode file; `changes` replace arrays (None drops one)."""
    episode = make_episode(5)
    arrays = {"image": episode.frames.transpose(0, 2, 3, 1), "action": episode.action, "reward": episode.reward,
              "discount": episode.discount, "is_first": np.arange(5) == 0, "is_last": np.arange(5) == 4,
              "is_terminal": np.zeros(5, bool)}
    return _save_npz(folder / (name or NPZ_NAME.format(5)), arrays, changes)


def gen_dgrl_file(folder: Path, name: str | None = None, **changes: np.ndarray | None) -> Path:
    """A 4-step gen_dgrl episode file with float32 observations as published; `changes` as in vd4rl_file."""
    arrays = {"observations": np.full((5, 3, 8, 8), 17.0, np.float32), "actions": np.array([[3], [0], [14], [2]]),
              "rewards": np.array([[0.0], [0.3], [0.0], [0.0]], np.float32), "dones": np.array([0, 0, 0, 1], bool)}
    return _save_npz(folder / (name or GEN_DGRL_NAME.format(4)), arrays, changes)


def _save_npz(path: Path, arrays: dict[str, np.ndarray], changes: dict[str, np.ndarray | None]) -> Path:
    arrays = {key: value for key, value in {**arrays, **changes}.items() if value is not None}
    with open(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    return path


def hdf5_file(folder: Path, **changes: np.ndarray | None) -> Path:
    """A shard of two 4-row episodes; `changes` as in vd4rl_file."""
    arrays = {"observation": np.zeros((8, 3, 8, 8), np.uint8), "action": np.zeros((8, 2), np.float32),
              "reward": np.zeros(8, np.float32), "discount": np.ones(8, np.float32),
              "step_type": np.array([0, 1, 1, 2, 0, 1, 1, 2], np.float64)}
    path = folder / "shard_0_reward_0.0.hdf5"
    with h5py.File(path, "w") as shard:
        for key, value in {**arrays, **changes}.items():
            if value is not None:
                shard.create_dataset(key, data=value)
    return path


def truncated(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def corrupt_middle(path: Path) -> Path:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)
    path.write_bytes(bytes(data))
    return path


def folder_of(*makers: Callable[[Path], Path]) -> Callable[[Path], Path]:
    def build(tmp_path: Path) -> Path:
        folder = tmp_path / "dataset"
        folder.mkdir()
        for make in makers:
            make(folder)
        return folder
    return build


def big_vd4rl_file(folder: Path) -> Path:
    """Incompressible frames, so that damage in the middle of the archive lands inside a member's data."""
    return vd4rl_file(folder, image=np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8))


def _garbage(path: Path) -> Path:
    path.write_bytes(np.random.default_rng(1).bytes(4096))
    return path


def _npy(path: Path) -> Path:
    np.save(path, np.zeros(3))
    return path


BAD_INPUTS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing path": (lambda tmp: tmp / "no_such_dataset", "does not exist"),
    "empty folder": (folder_of(), "holds no"),
    "no data files": (folder_of(lambda f: (f / "notes.txt").write_text("hi")), "holds no"),
    "mixed formats": (folder_of(vd4rl_file, hdf5_file), "mixes formats"),
    "unknown npz name": (lambda tmp: vd4rl_file(tmp, name="episode.npz"), "not named like"),
    "truncated hdf5": (lambda tmp: truncated(hdf5_file(tmp)), "cannot be read as HDF5"),
    "garbage hdf5": (lambda tmp: _garbage(tmp / "data.hdf5"), "cannot be read as HDF5"),
    "garbage npz": (lambda tmp: _garbage(tmp / NPZ_NAME.format(5)), "cannot be read"),
    "truncated npz": (lambda tmp: truncated(gen_dgrl_file(tmp)), "cannot be read"),
    "corrupt npz member": (lambda tmp: corrupt_middle(big_vd4rl_file(tmp)), "cannot be read"),
    "garbage npy": (lambda tmp: _garbage(tmp / GEN_DGRL_NAME.format(4).replace(".npz", ".npy")), "cannot be read"),
    "npy without dict": (lambda tmp: _npy(tmp / GEN_DGRL_NAME.format(4).replace(".npz", ".npy")), "not a dict"),
    "npz missing key": (lambda tmp: vd4rl_file(tmp, reward=None), "missing key"),
    "hdf5 missing key": (lambda tmp: hdf5_file(tmp, step_type=None), "missing key"),
    "gen_dgrl missing key": (lambda tmp: gen_dgrl_file(tmp, dones=None), "missing key"),
    "npz lengths": (lambda tmp: vd4rl_file(tmp, reward=np.zeros(4, np.float32)), "disagree in length"),
    "hdf5 lengths": (lambda tmp: hdf5_file(tmp, action=np.zeros((7, 2), np.float32)), "disagree in length"),
    "gen_dgrl step lengths": (lambda tmp: gen_dgrl_file(tmp, actions=np.zeros((3, 1), int)), "disagree in length"),
    "gen_dgrl observation rows": (lambda tmp: gen_dgrl_file(tmp, observations=np.zeros((4, 3, 8, 8))), "4 + 1 rows"),
    "image values above 255": (lambda tmp: vd4rl_file(tmp, image=np.full((5, 8, 8, 3), 300.0)), "[0, 255]"),
    "image scaled to [0, 1]": (lambda tmp: vd4rl_file(tmp, image=np.full((5, 8, 8, 3), 0.5)), "[0, 255]"),
    "bool image": (lambda tmp: vd4rl_file(tmp, image=np.zeros((5, 8, 8, 3), bool)), "dtype bool"),
    "float discrete actions": (lambda tmp: gen_dgrl_file(tmp, actions=np.zeros((4, 1))), "dtype float64"),
    "negative discrete actions": (lambda tmp: gen_dgrl_file(tmp, actions=-np.ones((4, 1), int)),
                                  "holds action -1 at row 0"),
    "discrete action past Procgen's": (lambda tmp: gen_dgrl_file(tmp, actions=np.array([[3], [0], [15], [2]])),
                                       "holds action 15 at row 2"),
    "four-channel image": (lambda tmp: vd4rl_file(tmp, image=np.zeros((5, 8, 8, 4), np.uint8)), "square RGB"),
    "non-square image": (lambda tmp: vd4rl_file(tmp, image=np.zeros((5, 8, 6, 3), np.uint8)), "square RGB"),
    "channels-last hdf5": (lambda tmp: hdf5_file(tmp, observation=np.zeros((8, 8, 8, 3), np.uint8)), "square RGB"),
    "image ndim": (lambda tmp: hdf5_file(tmp, observation=np.zeros((8, 3, 64), np.uint8)), "square RGB"),
    "action ndim": (lambda tmp: vd4rl_file(tmp, action=np.zeros(5, np.float32)), "continuous actions"),
    "nan reward": (lambda tmp: vd4rl_file(tmp, reward=np.array([0, 1, np.nan, 0, 0], np.float32)), "NaN"),
    "no FIRST at start": (lambda tmp: hdf5_file(tmp, step_type=np.array([1, 1, 1, 2, 0, 1, 1, 2])), "not FIRST"),
    "no LAST at end": (lambda tmp: hdf5_file(tmp, step_type=np.array([0, 1, 1, 1, 0, 1, 1, 2])), "LAST"),
    "stray LAST": (lambda tmp: hdf5_file(tmp, step_type=np.array([0, 2, 1, 2, 0, 1, 1, 2])), "LAST"),
    "bad step_type": (lambda tmp: hdf5_file(tmp, step_type=np.array([0, 1, 3, 2, 0, 1, 1, 2])), "other than 0, 1, 2"),
    "npz name length": (lambda tmp: vd4rl_file(tmp, name=NPZ_NAME.format(6)), "says length 6"),
    "gen_dgrl name length": (lambda tmp: gen_dgrl_file(tmp, name=GEN_DGRL_NAME.format(5)), "says length 5"),
    "gen_dgrl done mid-episode": (lambda tmp: gen_dgrl_file(tmp, dones=np.array([0, 1, 0, 1], bool)), "before the last"),
    "npz is_terminal disagrees": (lambda tmp: vd4rl_file(tmp, is_terminal=np.arange(5) == 4), "is_terminal"),
    "npz two episodes": (lambda tmp: vd4rl_file(tmp, is_first=np.arange(5) % 3 == 0), "is_first"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_raises_dataset_error_naming_the_file(tmp_path: Path, case: str) -> None:
    make, problem = BAD_INPUTS[case]
    path = make(tmp_path)
    with pytest.raises(DatasetError, match=re.escape(problem)) as caught:
        list(iter_episodes(path))
    assert path.name in str(caught.value)
    if path.is_file():  # a folder holding the bad file fails the same way
        with pytest.raises(DatasetError, match=re.escape(problem)) as caught:
            list(iter_episodes(path.parent))
        assert path.name in str(caught.value)


def test_gen_dgrl_action_outside_procgens_action_set_names_file_value_and_range(tmp_path: Path) -> None:
    path = gen_dgrl_file(tmp_path, actions=np.array([[3], [20], [14], [21]]))
    with pytest.raises(DatasetError) as caught:
        list(iter_episodes(tmp_path))
    message = str(caught.value)
    assert message.startswith(f"{path}: 'actions' holds action 20 at row 1 (2 row(s) in all)")
    assert "valid actions are 0..14, i.e. [0, 15)" in message


def test_format_argument_must_match_the_files(published_fixtures: Path) -> None:
    folder = published_fixtures / COINRUN
    with pytest.raises(DatasetError, match="holds gen_dgrl files, not vd4rl_npz") as caught:
        iter_episodes(folder, format="vd4rl_npz")  # checked on the call, before any iteration
    assert folder.name in str(caught.value)
    with pytest.raises(ValueError, match="unknown dataset format"):
        iter_episodes(folder, format="procgen")
