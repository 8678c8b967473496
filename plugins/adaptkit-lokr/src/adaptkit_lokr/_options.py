"""What LoKr and OFT options share beyond adaptkit's adapter options."""

from __future__ import annotations

from adaptkit import AdapterOptions
from pydantic import field_validator


class NoImportOptions(AdapterOptions):
    """Adapter options whose method cannot start from a kohya/LyCORIS file (``init_from``)."""

    @field_validator("init_from")
    @classmethod
    def _no_init_from(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError("only the lora and loha methods can start from a kohya/LyCORIS file")
        return value
