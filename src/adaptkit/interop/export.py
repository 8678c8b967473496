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

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
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
    """``RUN_DIR/exports/NAME-FORMAT.safetensors`` for file formats, ``RUN_DIR/exports/NAME-FORMAT/`` otherwise
    (``NAME-step-NNNNNN-FORMAT`` for a checkpoint's weights)."""
    suffix = ".safetensors" if fmt in FILE_FORMATS else ""
    name = f"{info.name}-{info.checkpoint.name}" if isinstance(info, CheckpointInfo) else info.name
    return RunDir(info.run_dir).exports / f"{name}-{fmt}{suffix}"


@dataclass(frozen=True)
class CheckpointInfo(RunInfo):
    """One checkpoint of a run as exports see it: ``steps`` is the checkpoint's step and
    :attr:`adapter_dir` the folder its weights were saved into by the run's method."""

    checkpoint: Path = Path()
    saved: Path = Path()

    @property
    def adapter_dir(self) -> Path:
        return self.saved


def checkpoint_info(run_dir: Path, given: str | Path) -> CheckpointInfo:
    """The run in ``run_dir`` (finished or not) and its checkpoint ``given`` (see
    :func:`~adaptkit.training.checkpoint.find_checkpoint`); its weights are not saved yet."""
    from adaptkit.run import read_run_recipe, recipe_hash
    from adaptkit.training.checkpoint import read_manifest
    from adaptkit.training.checkpoint_use import find_checkpoint

    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run directory")
    recipe = read_run_recipe(run_dir)
    path = find_checkpoint(RunDir(run_dir).checkpoints, str(given))
    step = int((read_manifest(path) or {}).get("step", 0))
    return CheckpointInfo(run_dir, recipe, step, recipe_hash(recipe), checkpoint=path)


def save_checkpoint_weights(info: CheckpointInfo, out_dir: Path) -> CheckpointInfo:
    """Load ``info``'s checkpoint onto the base model and save it with the run's method into ``out_dir``,
    as the run would have saved its result (EMA weights when it kept an EMA); ``info`` pointing there."""
    from adaptkit.plugins import get_plugin_manager
    from adaptkit.training.checkpoint_use import checkpoint_model

    registries = get_plugin_manager(info.recipe.plugins.modules).collect()
    loaded = checkpoint_model(info.checkpoint, info.recipe, registries)
    loaded.method.save(loaded.components, out_dir)
    return replace(info, saved=out_dir)


def check_out(out: Path, fmt: str, overwrite: bool) -> None:
    """``out`` fits ``fmt`` (one ``.safetensors`` file or a folder) and replaces nothing unless ``overwrite``."""
    if fmt in FILE_FORMATS:
        if out.suffix != ".safetensors":
            raise UserError(f"--out {out}: a {fmt} export is one file; give a path ending in .safetensors")
        if out.is_dir():
            raise UserError(f"--out {out}: is a folder; a {fmt} export is one .safetensors file")
        if out.exists() and not overwrite:
            raise UserError(f"--out {out}: the file exists; pass --overwrite to replace it, or give another --out")
        return
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: a {fmt} export is a folder, and {out} is a file")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UserError(
            f"--out {out}: the folder exists and is not empty; pass --overwrite to write the export into it, "
            "or give another --out"
        )


def export_run(
    run_dir: Path,
    fmt: str,
    out: Path | None = None,
    *,
    checkpoint: str | Path | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``run_dir``'s result in format ``fmt`` at ``out`` (default :func:`default_out`); return the path.

    With ``checkpoint`` (a name under the run's ``checkpoints/``, ``latest`` or a checkpoint folder;
    ``run_dir`` may also be the checkpoint folder itself) the export holds that checkpoint's weights:
    the run's method saves them into a temporary folder, which the exporters read as a result.
    An existing ``out`` is replaced only with ``overwrite``.

    A model card goes with it: ``README.md`` inside a folder export, ``NAME.md`` beside a file export.

    A format that does not fit the run's method is a UserError naming the method and the formats that fit.
    """
    from adaptkit.training.checkpoint_use import split_checkpoint_path

    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: unknown format (valid: {', '.join(FORMATS)})")
    run_dir, inside = split_checkpoint_path(Path(run_dir))
    if inside is not None and checkpoint is not None:
        raise UserError(f"{inside}: is a checkpoint folder; with --checkpoint give the run folder")
    checkpoint = inside if inside is not None else checkpoint
    info = read_run(run_dir) if checkpoint is None else checkpoint_info(run_dir, checkpoint)
    exporter = EXPORTERS.get((fmt, info.method))
    if exporter is None:
        valid = ", ".join(formats_for(info.method)) or "none (a plugin method: copy its adapter/ folder)"
        raise UserError(f"--format {fmt}: does not fit method {info.method!r} of {run_dir} (valid: {valid})")
    if fmt == "kohya" and not info.family.kohya_layout:
        raise UserError(
            f"--format kohya: model family {info.family.name} has no kohya/LyCORIS key layout; "
            "export with --format diffusers (which ComfyUI and diffusers read) or peft"
        )
    out = Path(out) if out is not None else default_out(info, fmt)
    check_out(out, fmt, overwrite)
    if isinstance(info, CheckpointInfo):
        with tempfile.TemporaryDirectory(prefix="adaptkit-export-") as tmp:
            path = exporter(save_checkpoint_weights(info, Path(tmp)), out)
    else:
        path = exporter(info, out)
    write_card(info, path / CARD_NAME if fmt not in FILE_FORMATS else path.with_suffix(".md"))
    return path
