"""DCS-style distractions: each kind and mode changes the render, seeding, fixed vs per-episode, sources."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthvis.envs.distractions import (
    DISTRACTION_MODES,
    BackgroundSource,
    BackgroundSourceError,
    DavisSource,
    ImageFolderSource,
    ProceduralSource,
    make_background_source,
    make_distractions,
    parse_mode,
    procedural_textures,
    vd4rl_seed,
)
from synthvis.envs.distractions.background import skybox_texture_id
from synthvis.envs.distractions.background_sources import PROCEDURAL_FAMILIES
from synthvis.envs.dmc import DMCPixelEnv

SIZE = 32
TASKS = {
    "cheetah": "run",
    "walker": "walk",
    "reacher": "easy",
    "cartpole": "swingup",
    "point_mass": "easy",
    "humanoid": "walk",
}


def rollout(
    domain: str, distractions=(), seed: int = 0, steps: int = 1, episodes: int = 1
) -> list[np.ndarray]:
    """Frames of `episodes` episodes (reset + `steps` zero-action steps each) at SIZE px."""
    env = DMCPixelEnv(domain, TASKS[domain], seed=seed, image_size=SIZE, distractions=distractions)
    frames = []
    try:
        for _ in range(episodes):
            frames.append(env.reset().frame)
            for _ in range(steps):
                frames.append(env.step(np.zeros(env.action_dim)).frame)
    finally:
        env.close()
    return frames


def mean_abs_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(np.mean([np.abs(x.astype(int) - y.astype(int)).mean() for x, y in zip(a, b)]))


@pytest.fixture(scope="module")
def clean_frames() -> dict[str, list[np.ndarray]]:
    """Undistracted reference frames per domain, computed once."""
    return {domain: rollout(domain) for domain in ("walker", "cheetah")}


def test_modes_parse_with_vd4rl_seeds() -> None:
    assert {m: parse_mode(m).seed for m in ("fixed_easy", "fixed_medium", "fixed_hard")} == {
        "fixed_easy": 2037604709,
        "fixed_medium": 1768187245,
        "fixed_hard": 1685217640,
    }
    assert vd4rl_seed("easy") == 2037604709
    assert [parse_mode(m).name for m in DISTRACTION_MODES] == list(DISTRACTION_MODES)
    assert [parse_mode(m).scale for m in ("easy", "medium", "fixed_hard")] == [0.1, 0.2, 0.3]
    assert [parse_mode(m).num_videos for m in ("easy", "medium", "hard")] == [4, 8, None]
    assert parse_mode("fixed_easy").fixed and not parse_mode("easy").fixed
    assert parse_mode("easy", seed=7).seed == 7
    with pytest.raises(ValueError, match="unknown distraction mode"):
        parse_mode("extreme")
    with pytest.raises(ValueError, match="unknown distraction kinds"):
        make_distractions("walker", "easy", kinds=("texture",))


@pytest.mark.parametrize("kind", ["color", "camera", "background"])
def test_each_kind_changes_pixels(kind: str, clean_frames) -> None:
    distracted = rollout("walker", make_distractions("walker", "medium", kinds=(kind,)))
    assert mean_abs_difference(distracted, clean_frames["walker"]) > 1.0


@pytest.mark.parametrize("mode", DISTRACTION_MODES)
def test_each_mode_changes_pixels(mode: str, clean_frames) -> None:
    distracted = rollout("cheetah", make_distractions("cheetah", mode))
    assert mean_abs_difference(distracted, clean_frames["cheetah"]) > 1.0


def test_same_seed_reproduces_frames_and_other_seeds_differ() -> None:
    def frames(seed: int) -> list[np.ndarray]:
        return rollout("walker", make_distractions("walker", "hard", seed=seed, dynamic=True), episodes=2)

    first, again, other = frames(3), frames(3), frames(4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert mean_abs_difference(first, other) > 1.0


def distraction_state(physics, camera_id: int = 0) -> dict[str, np.ndarray]:
    """What the distractions edit: material colours, the camera axes, the skybox pixels."""
    texture = skybox_texture_id(physics.model)
    start = physics.model.tex_adr[texture]
    return {
        "color": physics.model.mat_rgba[:, :3].copy(),
        # cheetah's camera is trackcom: its position follows the agent, its axes do not.
        "camera": physics.data.cam_xmat[camera_id].copy(),
        "background": physics.model.tex_data[start : start + 64 * 64 * 3].copy(),
    }


@pytest.mark.parametrize("mode", ["fixed_medium", "medium"])
def test_fixed_modes_keep_and_per_episode_modes_redraw(mode: str) -> None:
    env = DMCPixelEnv("cheetah", "run", image_size=SIZE, distractions=make_distractions("cheetah", mode))
    states = []
    for _ in range(3):
        env.reset()
        states.append(distraction_state(env.physics))
    env.close()
    for kind in ("color", "camera", "background"):
        same = [np.array_equal(states[0][kind], state[kind]) for state in states[1:]]
        assert all(same) if mode.startswith("fixed_") else not any(same), kind


def test_per_episode_draws_are_a_function_of_seed_and_episode() -> None:
    mode = parse_mode("hard", seed=11)
    assert (
        mode.episode_rng(5, "color").random() == parse_mode("hard", seed=11).episode_rng(5, "color").random()
    )
    assert mode.episode_rng(5, "color").random() != mode.episode_rng(6, "color").random()
    assert mode.episode_rng(5, "color").random() != mode.episode_rng(5, "camera").random()
    # `easy` never replays `fixed_easy`'s (training) distraction.
    assert (
        parse_mode("easy").episode_rng(0, "color").random()
        != parse_mode("fixed_easy").episode_rng(0, "color").random()
    )


@pytest.mark.parametrize("domain", list(TASKS))
def test_camera_override_survives_physics_steps(domain: str) -> None:
    camera = make_distractions(domain, "fixed_hard", kinds=("camera",))
    env = DMCPixelEnv(domain, TASKS[domain], image_size=SIZE, distractions=camera)
    env.reset()
    perturbed = env.physics.data.cam_xmat[0].copy()
    env.physics.step()  # the step recomputes the camera pose from the model ...
    recomputed = env.physics.data.cam_xmat[0].copy()
    env.reset()
    env.step(np.zeros(env.action_dim))  # ... and the env re-applies the distraction after each step
    assert not np.allclose(perturbed, recomputed)
    assert np.allclose(env.physics.data.cam_xmat[0], perturbed)
    env.close()


@pytest.mark.parametrize("domain", ["reacher", "point_mass", "humanoid"])
def test_camera_changes_pixels_on_other_domains(domain: str) -> None:
    clean = rollout(domain)
    distracted = rollout(domain, make_distractions(domain, "hard", kinds=("camera",)))
    assert mean_abs_difference(distracted, clean) > 1.0


@pytest.mark.parametrize("domain", ["walker", "cheetah"])
def test_background_replaces_the_sky(domain: str, clean_frames) -> None:
    distracted = rollout(domain, make_distractions(domain, "hard", kinds=("background",)))
    sky = slice(0, SIZE // 4)  # the top rows show sky in walker and cheetah
    clean_sky = [frame[:, sky] for frame in clean_frames[domain]]
    assert mean_abs_difference([frame[:, sky] for frame in distracted], clean_sky) > 5.0


def test_all_distractions_run_on_humanoid() -> None:
    frames = rollout("humanoid", make_distractions("humanoid", "hard", dynamic=True), steps=2)
    assert all(frame.shape == (3, SIZE, SIZE) for frame in frames)


def test_dynamic_distractions_move_within_their_range() -> None:
    env = DMCPixelEnv(
        "walker", "walk", image_size=SIZE, distractions=make_distractions("walker", "hard", dynamic=True)
    )
    env.reset()
    color = env.distractions[2]
    before = distraction_state(env.physics)
    env.step(np.zeros(env.action_dim))
    after = distraction_state(env.physics)
    for kind in ("color", "camera", "background"):
        assert not np.array_equal(before[kind], after[kind]), kind
    offset = env.physics.model.mat_rgba[:, :3] - color._original
    assert np.all(np.abs(offset) <= color.mode.scale + 1e-9)
    env.close()


class CountingSource(BackgroundSource):
    """Ten two-frame videos whose requested indices are recorded."""

    def __init__(self) -> None:
        self.requested: list[int] = []

    def __len__(self) -> int:
        return 10

    def num_frames(self, index: int) -> int:
        return 2

    def video(self, index: int, size: int) -> np.ndarray:
        self.requested.append(index)
        return np.full((2, size, size, 3), index, np.uint8)


@pytest.mark.parametrize("mode, pool", [("easy", 4), ("medium", 8), ("hard", 10)])
def test_background_pool_is_the_first_videos(mode: str, pool: int) -> None:
    source = CountingSource()
    (background,) = make_distractions("walker", mode, kinds=("background",), background_source=source)
    env = DMCPixelEnv("walker", "walk", image_size=SIZE)
    for episode in range(40):
        background.on_reset(env.physics, episode)
    env.close()
    assert set(source.requested) <= set(range(pool)) and len(set(source.requested)) > 1


class NumberedFramesSource(BackgroundSource):
    """One three-frame video whose frame t is filled with the value t."""

    def __len__(self) -> int:
        return 1

    def num_frames(self, index: int) -> int:
        return 3

    def video(self, index: int, size: int) -> np.ndarray:
        return np.arange(3, dtype=np.uint8)[:, None, None, None].repeat(size, 1).repeat(size, 2).repeat(3, 3)


def test_dynamic_background_plays_back_and_forth() -> None:
    (background,) = make_distractions(
        "walker", "hard", kinds=("background",), background_source=NumberedFramesSource(), dynamic=True
    )
    env = DMCPixelEnv("walker", "walk", image_size=SIZE)
    background.on_reset(env.physics, 0)
    texture = skybox_texture_id(env.physics.model)
    shown = [int(env.physics.model.tex_data[env.physics.model.tex_adr[texture]])]
    for _ in range(6):
        background.on_step(env.physics)
        shown.append(int(env.physics.model.tex_data[env.physics.model.tex_adr[texture]]))
    env.close()
    steps = np.diff(shown)
    assert set(shown) == {0, 1, 2} and np.all(np.abs(steps) == 1)


def test_procedural_splits_are_disjoint_and_reproducible() -> None:
    augment = procedural_textures("augment", 6, 24)
    test = procedural_textures("test", 6, 24)
    assert augment.shape == test.shape == (6, 24, 24, 3) and augment.dtype == np.uint8
    assert np.array_equal(augment, procedural_textures("augment", 6, 24))
    assert not any(np.array_equal(a, t) for a in augment for t in test)
    assert not np.array_equal(procedural_textures("test", 1, 24, seed=1), test[:1])
    source = ProceduralSource("test", count=6, frames_per_video=5)
    video = source.video(len(PROCEDURAL_FAMILIES), 24)
    assert video.shape == (5, 24, 24, 3)
    assert np.array_equal(video[0], test[len(PROCEDURAL_FAMILIES)])  # textures are the videos' first frames
    assert np.array_equal(video[3], source.frame(len(PROCEDURAL_FAMILIES), 3, 24))
    assert not np.array_equal(video[0], video[-1])
    assert all(frame.std() > 5 for frame in test)  # no flat textures
    with pytest.raises(ValueError, match="unknown procedural split"):
        procedural_textures("train", 1, 8)


def write_image(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_image_folder_source(tmp_path: Path) -> None:
    with pytest.raises(BackgroundSourceError, match=str(tmp_path / "absent")):
        ImageFolderSource(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    with pytest.raises(BackgroundSourceError, match="holds no .jpg"):
        make_background_source("image_folder", tmp_path / "empty")
    write_image(tmp_path / "images" / "b.png", (0, 255, 0))
    write_image(tmp_path / "images" / "a.JPG", (255, 0, 0))
    source = ImageFolderSource(tmp_path / "images")
    assert len(source) == 2
    video = source.video(0, 16)
    assert video.shape == (1, 16, 16, 3) and video[0, 8, 8, 0] > 200  # sorted: a.JPG (red) first


def test_davis_source(tmp_path: Path) -> None:
    frames = tmp_path / "DAVIS" / "JPEGImages" / "480p"
    for name in ("cows", "bear", "dog"):
        for index in range(3):
            write_image(frames / name / f"{index:05d}.jpg", (index * 100, 0, 0))
    with pytest.raises(BackgroundSourceError, match="DAVIS-2017"):
        DavisSource(tmp_path / "nowhere")
    # Without ImageSets: all folders, sorted by name.
    assert DavisSource(tmp_path / "DAVIS").videos == ["bear", "cows", "dog"]
    davis = DavisSource(frames)
    assert davis.num_frames(0) == 3 and davis.video(0, 8).shape == (3, 8, 8, 3)
    assert np.array_equal(davis.frame(0, 2, 8), davis.video(0, 8)[2])
    split_files = tmp_path / "DAVIS" / "ImageSets" / "2017"
    split_files.mkdir(parents=True)
    (split_files / "train.txt").write_text("dog\ncows\n")
    (split_files / "val.txt").write_text("bear\nmissing\n")
    assert DavisSource(tmp_path / "DAVIS", split="train").videos == ["dog", "cows"]
    with pytest.raises(BackgroundSourceError, match="missing"):
        DavisSource(tmp_path / "DAVIS", split="val")
