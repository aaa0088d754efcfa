"""Evaluation episodes stepped in worker processes while the policy stays in the evaluating process.

Rendering dominates evaluation (dm_control draws ~100-250 frames/s per process on a CPU), so each worker owns the
envs of the chunk it is given (its own MuJoCo/EGL context: workers are spawned, never forked from a process that
may hold one) and sends every step's observations back; the evaluator answers with the chunk's policy on exactly
the batch a serial run would see. Env stepping is deterministic per process, so returns, kept observations and
paired renders equal the serial evaluation's for the same seeds.
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from synthvis.evaluation.chunks import EpisodeChunk, run_chunk
from synthvis.evaluation.paired_states import Pairing
from synthvis.evaluation.rollouts import Policy

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11


class _RemotePolicy:
    """The worker side of the policy: sends a batch of observations, waits for the actions."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        self.connection.send(("act", obs))
        return self.connection.recv()


def _serve(connection: Connection) -> None:
    """A worker's loop: play each chunk it is sent until it is sent None."""
    while (task := connection.recv()) is not None:
        chunk, pairing = task
        try:
            returns, frames = run_chunk(chunk, _RemotePolicy(connection), pairing)
        except Exception:  # noqa: BLE001 - any failure goes back to the evaluator, which raises it by chunk
            connection.send(("error", traceback.format_exc()))
        else:
            connection.send(("done", (returns, frames), pairing))
    connection.close()


class EpisodeWorkers:
    """`num_workers` spawned processes that play episode chunks; use as a context manager."""

    def __init__(self, num_workers: int) -> None:
        if num_workers < 1:
            raise ValueError(f"need at least one evaluation worker, got {num_workers}")
        context = multiprocessing.get_context("spawn")
        self.connections: list[Connection] = []
        self.processes = []
        for _ in range(num_workers):
            parent, child = context.Pipe()
            process = context.Process(target=_serve, args=(child,), daemon=True, name="synthvis-eval-worker")
            process.start()
            child.close()
            self.connections.append(parent)
            self.processes.append(process)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, error_type, *exc_info) -> None:
        self.close(terminate=error_type is not None)

    def close(self, terminate: bool = False) -> None:
        """Stop the workers: ask them to finish, or terminate them (after an error, mid-chunk)."""
        for connection in self.connections:
            try:
                connection.send(None)
            except OSError:
                pass  # already gone
        for process in self.processes:
            if terminate:
                process.terminate()
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
        self.connections, self.processes = [], []

    def run(self, chunks: Sequence[EpisodeChunk], policies: Sequence[Policy], pairing: Pairing | None = None,
            on_done: Callable[[], object] = lambda: None) -> list[tuple[list[float], list]]:
        """(returns, frames) of every chunk, chunk i played with policies[i]; what each chunk adds to `pairing` (a
        fork is sent with it) is merged back."""
        pending = deque(range(len(chunks)))
        busy: dict[Connection, int] = {}
        results: list = [None] * len(chunks)

        def hand_out(connection: Connection) -> None:
            if pending:
                index = pending.popleft()
                connection.send((chunks[index], None if pairing is None else pairing.fork()))
                busy[connection] = index

        for connection in self.connections:
            hand_out(connection)
        while busy:
            for connection in wait(list(busy)):
                index = busy[connection]
                kind, payload, *rest = self._receive(connection, chunks[index])
                if kind == "act":
                    connection.send(policies[index](payload))
                    continue
                if kind == "error":
                    raise RuntimeError(f"evaluation worker failed on {describe(chunks[index])}:\n{payload}")
                results[index] = payload
                if pairing is not None:
                    pairing.merge(rest[0])
                del busy[connection]
                on_done()
                hand_out(connection)
        return results

    @staticmethod
    def _receive(connection: Connection, chunk: EpisodeChunk) -> tuple:
        try:
            return connection.recv()
        except EOFError:
            raise RuntimeError(f"an evaluation worker died while playing {describe(chunk)} (out of memory, or "
                               "killed); rerun with eval.workers=0 to evaluate in this process and see the "
                               "error") from None


def describe(chunk: EpisodeChunk) -> str:
    """'<env> episodes a-b', for messages."""
    return f"{chunk.name} episodes {chunk.first}-{chunk.first + chunk.count - 1}"


def play(chunks: Sequence[EpisodeChunk], make_policy: Callable[[EpisodeChunk], Policy], pairing: Pairing | None,
         workers: EpisodeWorkers | None) -> list[tuple[list[float], list]]:
    """Play chunks in order in this process (workers None), or on the workers; the results are the same."""
    policies = [make_policy(chunk) for chunk in chunks]
    with tqdm(total=len(chunks), desc="evaluate", unit="chunk", leave=False) as progress:
        if workers is None:
            results = []
            for chunk, policy in zip(chunks, policies, strict=True):
                results.append(run_chunk(chunk, policy, pairing))
                progress.update()
            return results
        return workers.run(chunks, policies, pairing, progress.update)
