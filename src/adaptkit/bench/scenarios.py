"""Bench scenarios: one point of method × attention × optimizer × precision × EMA × checkpointing × caching
× ``torch.compile``.

A scenario's name spells every axis, e.g. ``lora/sdpa/adamw/no/ema-none/nogc/cached`` (``/compiled``
is added when the UNet is compiled, so older reports keep their names);
``--scenarios`` selects by name with shell patterns (``lora/*``, ``*/uncached``).
The default set is a baseline plus one change along each axis (one factor at a time);
``--matrix`` gives the full product, ``--file`` a TOML list of ``[[scenario]]`` tables.
"""

from __future__ import annotations

import fnmatch
import itertools
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import tomllib

from adaptkit.errors import UserError

#: The values of each axis; the first is the baseline's.
AXES: dict[str, tuple[Any, ...]] = {
    "method": ("lora", "full", "loha"),
    "attention": ("sdpa", "xformers"),
    "optimizer": ("adamw", "adamw8bit"),
    "precision": ("no", "bf16", "fp16"),
    "ema": ("none", "device", "cpu"),
    "checkpointing": (False, True),
    "cache": (True, False),
    "compile": (False, True),
}


@dataclass(frozen=True)
class Scenario:
    """One bench configuration (recipe values, not yet a recipe)."""

    method: str = "lora"
    attention: str = "sdpa"
    optimizer: str = "adamw"
    precision: str = "no"
    ema: str = "none"
    checkpointing: bool = False
    cache: bool = True
    compile: bool = False

    @property
    def name(self) -> str:
        """All axes in one string: ``method/attention/optimizer/precision/ema-X/[no]gc/[un]cached[/compiled]``."""
        return "/".join(
            (
                self.method,
                self.attention,
                self.optimizer,
                self.precision,
                f"ema-{self.ema}",
                "gc" if self.checkpointing else "nogc",
                "cached" if self.cache else "uncached",
                *(("compiled",) if self.compile else ()),
            )
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "scenario") -> "Scenario":
        """Build from a mapping of axis values (missing axes take the baseline's); UserError on a bad key/value."""
        for key, value in data.items():
            if key not in AXES:
                raise UserError(f"{where}: unknown key {key!r} (valid: {', '.join(AXES)})")
            if value not in AXES[key]:
                valid = ", ".join(str(v).lower() if isinstance(v, bool) else repr(v) for v in AXES[key])
                raise UserError(f"{where}: {key} = {value!r} is not valid (valid: {valid})")
        return cls(**data)


BASELINE = Scenario()


def one_factor_at_a_time() -> list[Scenario]:
    """The baseline and, for each axis, the baseline with that axis at each other value."""
    chosen = [BASELINE]
    for axis, values in AXES.items():
        chosen.extend(replace(BASELINE, **{axis: value}) for value in values[1:])
    return chosen


def full_matrix() -> list[Scenario]:
    """Every combination of every axis."""
    names = [f.name for f in fields(Scenario)]
    return [Scenario(**dict(zip(names, combo, strict=True))) for combo in itertools.product(*AXES.values())]


def load_scenario_file(path: str | Path) -> list[Scenario]:
    """``[[scenario]]`` tables of a TOML file (each sets some axes; the rest are the baseline's)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"--file: no such file: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML ({exc})") from None
    tables = data.get("scenario")
    if not isinstance(tables, list) or not tables:
        raise UserError(f"{path}: no [[scenario]] tables")
    return [Scenario.from_dict(table, f"{path} scenario {i + 1}") for i, table in enumerate(tables)]


def select(scenarios: list[Scenario], patterns: str | None) -> list[Scenario]:
    """Scenarios whose name matches any comma-separated shell pattern; every pattern must match one."""
    if not patterns:
        return scenarios
    chosen: list[Scenario] = []
    for pattern in (p.strip() for p in patterns.split(",") if p.strip()):
        matched = [s for s in scenarios if fnmatch.fnmatchcase(s.name, pattern)]
        if not matched:
            raise UserError(
                f"--scenarios: {pattern!r} matches no scenario (names look like {BASELINE.name}; "
                "add --matrix for every combination, or run with --list)"
            )
        chosen.extend(s for s in matched if s not in chosen)
    return chosen


def skip_reason(scenario: Scenario, device_type: str) -> str | None:
    """Why ``scenario`` cannot run on this machine, or None if it can."""
    if scenario.attention == "xformers":
        if device_type != "cuda":
            return "xformers needs a CUDA device"
        try:
            import xformers  # noqa: F401
        except Exception:
            return "xformers is not installed"
    if scenario.precision == "fp16" and device_type != "cuda":
        return "fp16 mixed precision needs a CUDA device"
    if scenario.compile and device_type != "cuda":
        return "torch.compile is benched on CUDA only (on a CPU its compile time swamps a few timed steps)"
    if scenario.optimizer == "adamw8bit":
        reason = _bitsandbytes_problem(device_type)
        if reason:
            return reason
    return None


def _bitsandbytes_problem(device_type: str) -> str | None:
    """None if an 8-bit AdamW step runs on ``device_type``, else why not."""
    try:
        import bitsandbytes as bnb
        import torch

        param = torch.nn.Parameter(torch.ones(4096, device=device_type))
        param.grad = torch.ones_like(param)
        bnb.optim.AdamW8bit([param]).step()
    except Exception as exc:  # ImportError, or no kernel for this device
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"bitsandbytes AdamW8bit cannot run on {device_type}: {first[:160]}"
    return None
