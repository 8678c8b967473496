"""The base of every recipe table, and the checks several tables share."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


def check_multiple_of_8(value: int) -> int:
    """``value``, or a ValueError when it is not a multiple of 8 (image sides, bucket steps)."""
    if value % 8:
        raise ValueError(f"must be a multiple of 8, got {value}")
    return value


class Section(BaseModel):
    """A recipe table: unknown keys are errors, and so is a NaN or infinite number."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
