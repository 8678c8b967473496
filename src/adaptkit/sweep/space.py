"""A sweep's space file (``adaptkit sweep RECIPE --space SPACE.toml``): what to search, how to judge
and prune, and the budget. Every key is checked, one line per problem::

    [sweep]
    trials = 12                           # finished trials (complete or pruned), all workers together
    minutes = 30                          # no new trial starts after this (per worker)
    tolerance = 0.05                      # fidelity loss allowed, as a fraction of the base's fidelity
    adapter_scales = [0.5, 0.75, 1.0]     # score each trial at these strengths: the strength is free

    [sweep.pruning]
    signal = "val_loss"                   # or "none"

    [fixed]                               # recipe keys every trial gets
    "validation.every" = 50

    [space]                               # recipe keys to search
    "train.learning_rate" = { low = 1e-4, high = 2e-3, log = true }
    "method.options.rank" = { choices = [8, 16, 32, 64] }
    "train.steps" = { low = 100, high = 300, step = 50 }
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from adaptkit.errors import UserError
from adaptkit.recipe.section import Section, check_adapter_scales

#: A value a search dimension may take: TOML scalars only.
Scalar = bool | int | float | str


class Dimension(Section):
    """One searched recipe key: ``choices``, or a ``low``..``high`` range (integers when both ends are
    integers, with an optional ``step``; ``log`` searches the range on a log scale)."""

    choices: list[Scalar] | None = Field(None, min_length=1, description="The values to choose among.")
    low: float | None = Field(None, description="The range's lowest value.")
    high: float | None = Field(None, description="The range's highest value.")
    step: float | None = Field(None, gt=0, description="The range's step (integer ranges: default 1).")
    log: bool = Field(False, description="Search the range on a log scale (low must be > 0).")
    integer: bool = Field(False, description="Integer range (set when low and high are both TOML integers).")

    @model_validator(mode="before")
    @classmethod
    def _integer_when_both_ends_are(cls, data: Any) -> Any:
        if isinstance(data, dict) and "integer" not in data:
            ends = (data.get("low"), data.get("high"))
            integer = all(isinstance(v, int) and not isinstance(v, bool) for v in ends)
            return {**data, "integer": integer}
        return data

    @model_validator(mode="after")
    def _choices_or_range(self) -> "Dimension":
        ranged = self.low is not None or self.high is not None
        if self.choices is not None and ranged:
            raise ValueError("give choices or low/high, not both")
        if self.choices is None:
            if self.low is None or self.high is None:
                raise ValueError("give choices = [...] or both low and high")
            if self.low > self.high:
                raise ValueError(f"low {self.low:g} is above high {self.high:g}")
            if self.log and self.low <= 0:
                raise ValueError(f"a log range needs low > 0, got {self.low:g}")
            if self.log and self.step is not None:
                raise ValueError("a log range takes no step")
        elif self.log or self.step is not None:
            raise ValueError("log and step apply to ranges, not to choices")
        return self

    def suggest(self, trial: Any, key: str) -> Scalar:
        """This dimension's value for an Optuna ``trial`` (asked under the name ``key``)."""
        if self.choices is not None:
            return trial.suggest_categorical(key, self.choices)
        assert self.low is not None and self.high is not None
        if self.integer:
            return trial.suggest_int(key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(key, self.low, self.high, step=self.step, log=self.log)

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one this dimension can give (a baseline trial must be)."""
        if self.choices is not None:
            return value in self.choices
        assert self.low is not None and self.high is not None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not self.low <= value <= self.high:
            return False
        if self.integer and value != int(value):
            return False
        step = self.step or (1 if self.integer else None)
        return step is None or abs(((value - self.low) / step) - round((value - self.low) / step)) < 1e-9

    def examples(self) -> list[Scalar]:
        """Values at the dimension's edges (checked against the recipe before any trial runs)."""
        if self.choices is not None:
            return list(self.choices)
        assert self.low is not None and self.high is not None
        ends = (int(self.low), int(self.high)) if self.integer else (self.low, self.high)
        return list(ends)


class PruningSection(Section):
    """Stopping bad trials early on an intermediate signal (Optuna's median pruner)."""

    signal: Literal["val_loss", "none"] = Field(
        "val_loss",
        description="val_loss: the trial's validation loss (needs validation.every > 0, e.g. in [fixed]); "
        "none: never prune.",
    )
    startup_trials: int = Field(2, ge=0, description="Trials that finish before any is pruned.")
    warmup_steps: int = Field(0, ge=0, description="No trial is pruned before this training step.")


class SweepSection(Section):
    """The objective, the budget and the search algorithm's settings."""

    name: str | None = Field(None, description="The sweep's folder under runs/; default: '<recipe>-sweep'.")
    trials: int = Field(12, ge=1, le=10_000, description="Stop when the study has this many complete or pruned trials.")
    minutes: float = Field(30.0, gt=0, description="A worker starts no new trial after this many minutes.")
    tolerance: float = Field(
        0.05, ge=0, lt=1, description="Fidelity loss allowed, as a fraction of the base model's fidelity."
    )
    style_figure: str | None = Field(None, description="Style axis METRIC[/FIGURE] (default: as adaptkit eval).")
    fidelity_figure: str | None = Field(None, description="Fidelity axis METRIC[/FIGURE] (default: as adaptkit eval).")
    adapter_scales: list[float] = Field(
        default_factory=list,
        description="Score every trial's adapter at these strengths; a trial counts at its best strength.",
    )
    baseline: bool = Field(True, description="The first trial is the recipe's own values (when inside the space).")
    seed: int = Field(0, ge=0, description="Seed of the TPE sampler.")
    startup_trials: int = Field(4, ge=0, description="Random trials before TPE models the space.")
    pruning: PruningSection = Field(default_factory=PruningSection)

    @field_validator("adapter_scales")
    @classmethod
    def _scales_in_range(cls, value: list[float]) -> list[float]:
        return check_adapter_scales(value)


class SweepSpec(Section):
    """A whole space file."""

    sweep: SweepSection = Field(default_factory=SweepSection)
    fixed: dict[str, Any] = Field(default_factory=dict, description="Recipe keys every trial gets.")
    space: dict[str, Dimension] = Field(min_length=1, description="Recipe keys to search.")

    def trial_values(self, searched: dict[str, Any]) -> dict[str, Any]:
        """Every recipe key one trial sets: the fixed keys, its searched values, and the strengths to score."""
        values = {**self.fixed, **searched}
        if self.sweep.adapter_scales:
            values["eval.adapter_scales"] = self.sweep.adapter_scales
        return values


def to_override(key: str, value: Any) -> str:
    """``--set`` text for one recipe key (TOML-encoded value)."""
    from adaptkit.recipe.dump import toml_value

    return f"{key}={toml_value(value)}"


def load_space(path: Path) -> SweepSpec:
    """Read and validate a space file (a one-line :class:`UserError` per problem)."""
    from adaptkit.recipe.loading import format_validation_error, read_toml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such space file (give a .toml file with a [space] table)")
    try:
        return SweepSpec.model_validate(read_toml(path))
    except ValidationError as exc:
        raise UserError.collect(format_validation_error(str(path), exc, SweepSpec)) from exc


def check_against_recipe(spec: SweepSpec, recipe: str | Path, space_file: Path) -> Any:
    """The recipe resolved with the ``[fixed]`` keys, once every ``[space]`` key is known to be a recipe key
    that takes the values given (each dimension's edge values are validated) and the recipe can be
    judged: its ``[eval]`` lists metrics, and it measures a validation loss when that prunes.
    One line per problem, naming the space file and the key."""
    from adaptkit.resolve import load_and_resolve

    fixed = [to_override(k, v) for k, v in spec.fixed.items()]
    problems: list[str] = []
    for key, dimension in spec.space.items():
        for value in dimension.examples():
            try:
                load_and_resolve(recipe, [*fixed, to_override(key, value)])
            except UserError as exc:
                problems += [f"{space_file}: [space] {key} = {value!r}: {line}" for line in exc.lines]
    try:
        resolved = load_and_resolve(recipe, fixed)
    except UserError as exc:
        raise UserError.collect([f"{space_file}: [fixed]: {line}" for line in exc.lines]) from exc
    if not resolved.recipe.eval.metric_names:
        problems.append(
            f"{recipe}: [eval] lists no metrics, and a sweep judges each trial by its evaluation "
            "(add eval.metrics to the recipe or to the space file's [fixed])"
        )
    if spec.sweep.pruning.signal == "val_loss" and resolved.recipe.validation.every == 0:
        problems.append(
            f'{space_file}: sweep.pruning.signal = "val_loss" needs a validation loss: set "validation.every" '
            'in [fixed] (e.g. 50), or signal = "none"'
        )
    if problems:
        raise UserError.collect(dict.fromkeys(problems))  # one line per problem, in order
    return resolved


#: Recipe tables whose ``options`` a component validated (the resolved options hold the defaults too).
_COMPONENT_OPTIONS = {"method.options": "method", "data.options": "dataset", "sample.options": "sampler"}


def recipe_value(resolved: Any, key: str) -> Any:
    """The value the resolved recipe has at dotted ``key`` (component options with their defaults), or
    ``None`` when it has none."""
    table, rest = key, ""
    for prefix, component in _COMPONENT_OPTIONS.items():
        if key.startswith(prefix + "."):
            node: Any = getattr(resolved, component).options.model_dump()
            rest = key[len(prefix) + 1 :]
            break
    else:
        node, rest = resolved.recipe.model_dump(), table
    for part in rest.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
