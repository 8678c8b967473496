"""The base of every recipe table, and the checks several tables share."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


def check_multiple_of_8(value: int) -> int:
    """``value``, or a ValueError when it is not a multiple of 8 (image sides, bucket steps)."""
    if value % 8:
        raise ValueError(f"must be a multiple of 8, got {value}")
    return value


#: The adapter strengths an evaluation may score (1.0 = as trained).
ADAPTER_SCALE_RANGE = (0.0, 4.0)


def check_adapter_scales(value: list[float]) -> list[float]:
    """``value`` sorted, each strength once, or a ValueError naming the first outside
    :data:`ADAPTER_SCALE_RANGE`."""
    low, high = ADAPTER_SCALE_RANGE
    bad = [scale for scale in value if not low <= scale <= high]
    if bad:
        raise ValueError(f"{bad[0]} is not an adapter strength (valid: {low} to {high})")
    return sorted(set(value))


class Section(BaseModel):
    """A recipe table: unknown keys are errors, and so is a NaN or infinite number."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
