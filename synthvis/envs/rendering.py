"""Headless MuJoCo rendering: pick the GL backend before dm_control is imported, and render profiles."""

from __future__ import annotations

import ctypes
import os
import sys

# Libraries each backend dlopens, and the Debian package that provides them.
_BACKEND_LIBRARIES = {
    "egl": (("libEGL.so.1", "libEGL.so"), "libegl1 libgl1-mesa-dri"),
    "osmesa": (("libOSMesa.so.8", "libOSMesa.so.6", "libOSMesa.so"), "libosmesa6"),
    "glfw": (("libglfw.so.3", "libglfw.so"), "libglfw3 (and a display: DISPLAY must be set)"),
}
AUTO_ORDER = ("egl", "osmesa")


class RenderingUnavailableError(RuntimeError):
    """No usable OpenGL backend for headless MuJoCo rendering."""


def _loadable(names: tuple[str, ...]) -> bool:
    for name in names:
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


def backend_available(backend: str) -> bool:
    """Whether the shared library a MuJoCo GL backend needs can be loaded."""
    if backend not in _BACKEND_LIBRARIES:
        raise ValueError(f"unknown MuJoCo GL backend {backend!r}; choose one of {sorted(_BACKEND_LIBRARIES)}")
    return _loadable(_BACKEND_LIBRARIES[backend][0])


def select_gl_backend(preferred: str = "auto") -> str:
    """Choose and export MUJOCO_GL/PYOPENGL_PLATFORM; must run before dm_control is imported.

    A user's own MUJOCO_GL wins over `preferred`. `auto` tries egl, then osmesa.
    """
    requested = os.environ.get("MUJOCO_GL") or preferred
    if "dm_control" in sys.modules or "dm_control.suite" in sys.modules:
        # dm_control fixed its backend at import; changing the variables now would only mislead.
        return os.environ.get("MUJOCO_GL", requested)
    candidates = AUTO_ORDER if requested == "auto" else (requested,)
    for backend in candidates:
        if backend in _BACKEND_LIBRARIES and backend_available(backend):
            os.environ["MUJOCO_GL"] = backend
            if backend in ("egl", "osmesa"):
                os.environ["PYOPENGL_PLATFORM"] = backend
            return backend
    if requested != "auto" and requested not in _BACKEND_LIBRARIES:
        raise RenderingUnavailableError(
            f"MUJOCO_GL={requested!r} is not a headless backend synthvis knows; use egl or osmesa "
            "(unset MUJOCO_GL to let synthvis choose)."
        )
    wanted = ", ".join(f"{b} needs `apt-get install {_BACKEND_LIBRARIES[b][1]}`" for b in candidates)
    raise RenderingUnavailableError(
        f"No OpenGL backend for MuJoCo rendering could be loaded (tried {', '.join(candidates)}): {wanted}. "
        "On a GPU machine install the NVIDIA driver's EGL library instead."
    )


def import_suite():
    """Import dm_control.suite after choosing the backend, turning bare import failures into clear errors."""
    backend = select_gl_backend()
    try:
        from dm_control import suite
    except ImportError as err:  # dm_control raises a bare ImportError when the GL library fails to load
        raise RenderingUnavailableError(
            f"dm_control failed to import with MUJOCO_GL={backend}: {err!r}. Install the backend's system "
            f"library (`apt-get install {_BACKEND_LIBRARIES.get(backend, ('', '?'))[1]}`) or set MUJOCO_GL=osmesa."
        ) from err
    return suite


# Render profiles: `fidelity` keeps dm_control's defaults (use it for anything compared with published
# V-D4RL frames); `fast` shrinks the shadow map and drops multisampling, ~2.5x faster on a software
# renderer with <= 0.7/255 mean pixel difference.
RENDER_PROFILES = {
    "fidelity": {},
    "fast": {"shadowsize": 256, "offsamples": 0},
}


def apply_render_profile(physics, profile: str) -> None:
    """Set the model's visual quality for `profile`; call before the first render."""
    if profile not in RENDER_PROFILES:
        raise ValueError(f"unknown render profile {profile!r}; choose one of {sorted(RENDER_PROFILES)}")
    for key, value in RENDER_PROFILES[profile].items():
        setattr(physics.model.vis.quality, key, value)
