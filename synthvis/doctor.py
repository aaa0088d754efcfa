"""`synthvis-doctor`: report what this machine can run and say precisely how to fix what is missing."""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from synthvis.utils.versions import package_versions


@dataclass
class Check:
    """The outcome of one check: ok, a detail line, and the fix when not ok."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def check_python() -> Check:
    """Python version within the supported range."""
    ok = (3, 10) <= sys.version_info[:2] <= (3, 12)
    return Check("python", ok, platform.python_version(), "use Python 3.10-3.12 (3.11 is the tested one)")


def check_packages() -> Check:
    """Every dependency importable, with versions."""
    versions = package_versions()
    missing = [name for name, version in versions.items() if version == "missing"]
    detail = ", ".join(f"{k} {v}" for k, v in versions.items() if k != "python")
    return Check("packages", not missing, detail, f"missing {missing}: run `make setup` (or pip install -e .)")


def check_pins() -> Check:
    """The version pins that matter: mujoco 3.17 for dm-control 1.0.50, numpy < 2 for procgen."""
    versions = package_versions()
    problems = []
    if versions["mujoco"] != "missing" and versions["mujoco"].split(".")[0] != "3":
        problems.append(f"mujoco {versions['mujoco']} breaks dm-control 1.0.50 (pip install mujoco==3.17.0)")
    if versions["numpy"] != "missing" and int(versions["numpy"].split(".")[0]) >= 2:
        problems.append(f"numpy {versions['numpy']} breaks procgen (pip install 'numpy<2')")
    return Check("version pins", not problems, "mujoco 3.x, numpy 1.x" if not problems else "; ".join(problems),
                 "; ".join(problems))


def check_torch() -> Check:
    """torch build, CUDA devices and bf16 support."""
    import torch

    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        detail = f"torch {torch.__version__}, CUDA {torch.version.cuda}: {names} (bf16 autocast on GPU)"
    else:
        detail = f"torch {torch.__version__}, no CUDA device: CPU fp32 (paper-scale runs need a GPU)"
    return Check("torch", True, detail)


def check_mujoco_rendering() -> Check:
    """Select the GL backend, render one dm_control frame, and name the OpenGL renderer."""
    from synthvis.envs.rendering import RenderingUnavailableError, select_gl_backend

    try:
        backend = select_gl_backend()
        from synthvis.envs.dmc import DMCPixelEnv

        env = DMCPixelEnv("cartpole", "swingup", image_size=64, frame_stack=1)
        env.reset()
        started = time.time()
        for _ in range(20):
            env.render()
        fps = 20 / (time.time() - started)
        renderer = _gl_renderer(env)
        env.close()
    except (RenderingUnavailableError, ImportError, RuntimeError) as err:
        return Check("MuJoCo rendering", False, str(err), "see the message; `apt-get install libegl1 libgl1-mesa-dri` "
                     "for EGL or `apt-get install libosmesa6` and MUJOCO_GL=osmesa")
    software = any(word in renderer.lower() for word in ("llvmpipe", "softpipe", "swrast"))
    note = " (software rendering: expect ~30-160 frames/s; use render_profile=fast)" if software else ""
    return Check("MuJoCo rendering", True, f"MUJOCO_GL={backend}, {renderer}, {fps:.0f} frames/s at 64 px{note}")


def _gl_renderer(env) -> str:
    try:
        from OpenGL import GL

        env.physics.contexts.gl.make_current()
        return GL.glGetString(GL.GL_RENDERER).decode()
    except Exception as err:  # noqa: BLE001 - the renderer name is informative only
        return f"renderer unknown ({type(err).__name__})"


def check_procgen() -> Check:
    """Procgen imports and steps (it needs no display)."""
    try:
        from synthvis.envs.procgen import ProcgenPixelEnv

        env = ProcgenPixelEnv("coinrun", split="train", num_envs=1, seed=0)
        env.step(np.zeros(1, dtype=np.int64))
        env.close()
    except Exception as err:  # noqa: BLE001 - any failure means procgen is unusable here
        return Check("procgen", False, f"{type(err).__name__}: {err}",
                     "pip install procgen-mirror==0.10.7 'numpy<2' (Python 3.11/3.12 wheels); it needs libGL.so.1 "
                     "and libglib-2.0 (apt-get install libgl1 libglib2.0-0)")
    return Check("procgen", True, "coinrun resets and steps")


CHECKS: tuple[Callable[[], Check], ...] = (check_python, check_packages, check_pins, check_torch,
                                          check_mujoco_rendering, check_procgen)


def run_checks() -> list[Check]:
    """Run every check, turning an unexpected crash into a failed check."""
    results = []
    for check in CHECKS:
        try:
            results.append(check())
        except Exception as err:  # noqa: BLE001 - one broken check must not hide the others
            results.append(Check(check.__name__.removeprefix("check_"), False, f"{type(err).__name__}: {err}",
                                 "report this with the output of `synthvis-doctor`"))
    return results


def main(argv: list[str] | None = None) -> int:
    """Print the report; exit 1 when a required check fails."""
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    results = run_checks()
    width = max(len(r.name) for r in results)
    for result in results:
        print(f"[{'ok' if result.ok else 'FAIL':>4}] {result.name:<{width}}  {result.detail}")
        if not result.ok:
            print(f"       {'':<{width}}  fix: {result.fix}")
    failed = [r for r in results if r.required and not r.ok]
    print("synthvis is ready." if not failed else f"{len(failed)} check(s) failed.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
