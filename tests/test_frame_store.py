"""FrameStore.build: a failed, interrupted or killed build leaves no partial folder behind."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from synthvis.core.episode import DatasetError, Episode
from synthvis.datamodules.frame_store import FrameStore
from tests.helpers import make_episode


def failing_midway(error: BaseException) -> Iterator[Episode]:
    """Two episodes, then `error`, as a reader that meets a corrupt file (or a Ctrl-C) mid-dataset does."""
    yield make_episode(5, start_value=0)
    yield make_episode(4, start_value=50)
    raise error


@pytest.mark.parametrize("error", [DatasetError("episodes/bad.npz", "cannot be read"), KeyboardInterrupt()])
def test_a_build_that_fails_midway_leaves_nothing(tmp_path: Path, error: BaseException) -> None:
    with pytest.raises(type(error)):
        FrameStore.build(failing_midway(error), tmp_path / "store")
    assert list(tmp_path.iterdir()) == []


def test_an_empty_dataset_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="holds no episodes"):
        FrameStore.build(iter(()), tmp_path / "store", source="data/empty")
    assert list(tmp_path.iterdir()) == []


def dead_pid() -> int:
    """The id of a process that has exited."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                           check=True)
    return int(child.stdout)


def test_partial_folders_of_killed_builds_are_removed_by_the_next_build(tmp_path: Path) -> None:
    killed = tmp_path / f"store.partial-{dead_pid()}"
    (killed / "frames.u8").parent.mkdir()
    (killed / "frames.u8").write_bytes(b"\0" * 64)  # what a SIGKILLed build leaves
    alive = tmp_path / f"store.partial-{os.getppid()}"  # another process still building this store
    other_key = tmp_path / f"other.partial-{dead_pid()}"  # another store's leftover: not this build's business
    alive.mkdir()
    other_key.mkdir()

    store = FrameStore.build([make_episode(5), make_episode(3, start_value=9)], tmp_path / "store")

    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(["store", alive.name, other_key.name])
    assert store.layout.num_rows == 8 and store.layout.num_episodes == 2
    np.testing.assert_array_equal(store.frames[5], make_episode(3, start_value=9).frames[0])
