"""The one description of a packed latent transition: field order, sizes and kinds.

Extraction packs with it, the diffusion datamodule normalizes with its skip dims, the sampler decodes with it and
head fine-tuning unpacks with it, so the vector layout is written down exactly once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

Array = TypeVar("Array", torch.Tensor, np.ndarray)

# What a field holds, and so how a generated value is decoded:
KINDS = {
    "tanh": "trunk features in (-1, 1) (DrQ trunks end in Tanh): clipped to [-1, 1]",
    "relu": "trunk features >= 0 (the Procgen trunk ends in ReLU): clipped at 0",
    "action": "continuous action in [-1, 1]: clipped to [-1, 1]",
    "onehot": "one-hot discrete action: decoded by argmax to int64",
    "scalar": "a real number (the n-step reward): passed through",
    "terminal": "episode end: decoded as float 1.0 where > 0.5, else 0.0 (SynthER terminal_threshold); not normalized",
}
_SCALAR_KINDS = ("scalar", "terminal")


@dataclass(frozen=True)
class Field:
    """One named block of the packed vector."""

    name: str
    size: int
    kind: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"field {self.name!r}: unknown kind {self.kind!r}; expected one of {sorted(KINDS)}")
        if self.size < 1 or (self.kind in _SCALAR_KINDS and self.size != 1):
            raise ValueError(f"field {self.name!r} of kind {self.kind!r} cannot have size {self.size}")

    @property
    def scalar(self) -> bool:
        """Whether the field is one number per transition (unpacked as (N,), not (N, 1))."""
        return self.kind in _SCALAR_KINDS


@dataclass(frozen=True)
class LatentLayout:
    """Ordered fields of a latent transition vector, plus the bootstrap discount that is not a field.

    `discount` is gamma^n of the dataset the latents came from. DMC has no terminals, so gamma^n * d is the same
    constant for every transition and is stored here once instead of being modelled (SynthER online DMC:
    modelled_terminals = False); Procgen models `done` as a field instead.
    """

    fields: tuple[Field, ...]
    discount: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", tuple(self.fields))
        names = [field.name for field in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"layout field names must be unique, got {names}")

    @property
    def dim(self) -> int:
        """Length D of the packed vector."""
        return sum(field.size for field in self.fields)

    @property
    def names(self) -> tuple[str, ...]:
        """Field names in packing order."""
        return tuple(field.name for field in self.fields)

    @property
    def slices(self) -> dict[str, slice]:
        """Each field's columns in the packed vector."""
        bounds = np.cumsum([0] + [field.size for field in self.fields]).tolist()
        return {field.name: slice(start, stop) for field, start, stop in zip(self.fields, bounds, bounds[1:])}

    @property
    def skip_norm_dims(self) -> tuple[int, ...]:
        """Columns the normalizer leaves alone: terminal flags (SynthER leaves the terminal unnormalized)."""
        return tuple(index for field, cols in zip(self.fields, self.slices.values()) if field.kind == "terminal"
                     for index in range(cols.start, cols.stop))

    @property
    def discrete(self) -> bool:
        """Whether actions are one-hot (Procgen)."""
        return any(field.kind == "onehot" for field in self.fields)

    def pack(self, fields: Mapping[str, Array]) -> Array:
        """(N, D) float32 from one (N, size) or (N,) array per field; integer actions of a one-hot field are encoded.

        All arrays must be numpy or all torch; the result is of the same type (and device).
        """
        if set(fields) != set(self.names):
            raise KeyError(f"pack needs exactly the fields {list(self.names)}, got {sorted(fields)}")
        num_rows = {len(value) for value in fields.values()}
        if len(num_rows) != 1:
            raise ValueError(f"fields have different numbers of rows: { {k: len(v) for k, v in fields.items()} }")
        blocks = [_block(field, fields[field.name]) for field in self.fields]
        if isinstance(blocks[0], torch.Tensor):
            return torch.cat(blocks, dim=1)
        return np.concatenate(blocks, axis=1)

    def unpack(self, x: Array) -> dict[str, Array]:
        """Views of each field's columns of (..., D) `x`; scalar fields lose their last axis."""
        self._check_dim(x)
        return {field.name: x[..., cols.start] if field.scalar else x[..., cols]
                for field, cols in zip(self.fields, self.slices.values())}

    def decode(self, x: Array) -> dict[str, Array]:
        """Fields of generated (or real) rows made valid: latents and actions clipped, argmax, terminal threshold."""
        return {field.name: _decode(field.kind, value) for field, value in zip(self.fields, self.unpack(x).values())}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable description (saved as layout.json beside the arrays)."""
        return {"fields": [{"name": f.name, "size": f.size, "kind": f.kind} for f in self.fields],
                "discount": self.discount}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatentLayout:
        """The layout `to_dict` described."""
        return cls(tuple(Field(str(f["name"]), int(f["size"]), str(f["kind"])) for f in data["fields"]),
                   None if data.get("discount") is None else float(data["discount"]))

    def check_rows(self, rows: Array, what: str) -> None:
        """Refuse anything but an (N, dim) array of rows, naming `what` they are (a file, "synthetic latents")."""
        if rows.ndim != 2 or rows.shape[1] != self.dim:
            raise ValueError(f"{what} has shape {tuple(rows.shape)}; the latent layout {list(self.names)} needs "
                             f"(N, {self.dim})")

    def _check_dim(self, x: Array) -> None:
        if x.shape[-1] != self.dim:
            raise ValueError(f"expected (..., {self.dim}) latent transitions for layout {list(self.names)}, "
                             f"got shape {tuple(x.shape)}")


def as_layout(layout: LatentLayout | Mapping[str, Any]) -> LatentLayout:
    """`layout` itself, or the layout its `to_dict` form describes (Hydra's instantiate passes a dataclass
    argument on as such a mapping)."""
    return layout if isinstance(layout, LatentLayout) else LatentLayout.from_dict(layout)


def _block(field: Field, value: Array) -> Array:
    """`value` as an (N, field.size) float32 block."""
    if field.kind == "onehot" and value.ndim == 1:
        if isinstance(value, torch.Tensor):
            value = F.one_hot(value.long(), field.size)
        else:
            value = np.eye(field.size, dtype=np.float32)[np.asarray(value, dtype=np.int64)]
    value = value.reshape(len(value), -1)
    if value.shape[1] != field.size:
        raise ValueError(f"field {field.name!r} needs {field.size} columns, got shape {tuple(value.shape)}")
    return value.float() if isinstance(value, torch.Tensor) else value.astype(np.float32, copy=False)


def _decode(kind: str, value: Array) -> Array:
    """One field's decoded value (see KINDS)."""
    is_tensor = isinstance(value, torch.Tensor)
    if kind in ("tanh", "action"):
        return value.clip(-1.0, 1.0)
    if kind == "relu":
        return value.clip(0.0, None)
    if kind == "onehot":
        index = value.argmax(-1)
        return index.long() if is_tensor else index.astype(np.int64)
    if kind == "terminal":
        flag = value > 0.5
        return flag.float() if is_tensor else flag.astype(np.float32)
    return value


def dmc_layout(latent_dim: int, action_dim: int, latents: Sequence[str] = ("z_pi", "z_q"),
               discount: float | None = None) -> LatentLayout:
    """concat(z_pi, z_q, a, r, z'_pi, z'_q): 4F + A + 1 dims (one latent per name in `latents`; BC has z_pi only)."""
    current = [Field(name, latent_dim, "tanh") for name in latents]
    upcoming = [Field(f"next_{name}", latent_dim, "tanh") for name in latents]
    return LatentLayout((*current, Field("action", action_dim, "action"), Field("reward", 1, "scalar"), *upcoming),
                        discount)


def procgen_layout(latent_dim: int, num_actions: int = 15, discount: float | None = None) -> LatentLayout:
    """concat(z_q, onehot(a), r, z'_q, done): 2F + A + 2 dims (529 for gen_dgrl's F = 256, A = 15)."""
    return LatentLayout((Field("z_q", latent_dim, "relu"), Field("action", num_actions, "onehot"),
                         Field("reward", 1, "scalar"), Field("next_z_q", latent_dim, "relu"),
                         Field("done", 1, "terminal")), discount)
