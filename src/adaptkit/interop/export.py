"""``export_run``: a finished run's result in another tool's format.

Which formats fit which method (a plugin's method exports nothing but may be copied by hand):

=============  ======================  =================  ===========  ============
format         lora                    loha               full         written as
=============  ======================  =================  ===========  ============
diffusers      pytorch_lora_weights    —                  pipeline     folder
peft           unet/ (+text_encoder/)  adapter folder     —            folder
kohya          kohya LoRA              LyCORIS LoHa       —            .safetensors
single-file    —                       —                  SD checkpoint .safetensors
=============  ======================  =================  ===========  ============
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from adaptkit.errors import UserError
from adaptkit.interop import kohya_lora, lycoris_loha, native, single_file
from adaptkit.interop.metadata import RunInfo, read_run
from adaptkit.interop.model_card import CARD_NAME, write_card
from adaptkit.run import RunDir

Exporter = Callable[[RunInfo, Path], Path]

FORMATS: tuple[str, ...] = ("diffusers", "peft", "kohya", "single-file")
#: Formats written as one file (the others are folders).
FILE_FORMATS = ("kohya", "single-file")
EXPORTERS: dict[tuple[str, str], Exporter] = {
    ("diffusers", "lora"): native.diffusers_lora,
    ("diffusers", "full"): native.diffusers_full,
    ("peft", "lora"): native.peft_lora,
    ("peft", "loha"): native.peft_loha,
    ("kohya", "lora"): kohya_lora.export,
    ("kohya", "loha"): lycoris_loha.export,
    ("single-file", "full"): single_file.export,
}


def formats_for(method: str) -> list[str]:
    """The export formats that fit ``method``, in :data:`FORMATS` order."""
    return [name for name in FORMATS if (name, method) in EXPORTERS]


def default_out(info: RunInfo, fmt: str) -> Path:
    """``RUN_DIR/exports/NAME-FORMAT.safetensors`` for file formats, ``RUN_DIR/exports/NAME-FORMAT/`` otherwise."""
    suffix = ".safetensors" if fmt in FILE_FORMATS else ""
    return RunDir(info.run_dir).exports / f"{info.name}-{fmt}{suffix}"


def export_run(run_dir: Path, fmt: str, out: Path | None = None) -> Path:
    """Write ``run_dir``'s result in format ``fmt`` at ``out`` (default :func:`default_out`); return the path.

    A model card goes with it: ``README.md`` inside a folder export, ``NAME.md`` beside a file export.

    A format that does not fit the run's method is a UserError naming the method and the formats that fit.
    """
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: unknown format (valid: {', '.join(FORMATS)})")
    info = read_run(Path(run_dir))
    exporter = EXPORTERS.get((fmt, info.method))
    if exporter is None:
        valid = ", ".join(formats_for(info.method)) or "none (a plugin method: copy its adapter/ folder)"
        raise UserError(f"--format {fmt}: does not fit method {info.method!r} of {run_dir} (valid: {valid})")
    out = Path(out) if out is not None else default_out(info, fmt)
    if fmt in FILE_FORMATS and out.suffix != ".safetensors":
        raise UserError(f"--out {out}: a {fmt} export is one file; give a path ending in .safetensors")
    if out.exists() and fmt not in FILE_FORMATS and not out.is_dir():
        raise UserError(f"--out {out}: a {fmt} export is a folder, and {out} is a file")
    path = exporter(info, out)
    write_card(info, path / CARD_NAME if fmt not in FILE_FORMATS else path.with_suffix(".md"))
    return path
