"""What a sweep found: the chosen trial by the checkpoint-ranking rule, its recipe as a runnable
``best.toml``, the Pareto front of style gain against fidelity loss (``front.png``), every trial,
and the parameter importances Optuna reports, in ``report.html``. Rewritten after every trial."""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptkit.evaluation.ranking import TradeOff, best, rule_text
from adaptkit.sweep.study import Sweep, finished_trials, pruning_rule, quiet_optuna_warnings


@dataclass(frozen=True)
class Placed:
    """A finished trial and its position."""

    trial: Any
    trade_off: TradeOff

    @property
    def folder(self) -> str:
        return self.trial.user_attrs["folder"]


def placed_trials(study: Any) -> list[Placed]:
    """Every finished, judged trial with its :class:`TradeOff` (from the attributes the objective recorded)."""
    out = []
    for t in finished_trials(study):
        a = t.user_attrs
        off = TradeOff(
            a["folder"],
            a["style_gain"],
            a["fidelity_loss"],
            a["base_fidelity"],
            a["style_figure"],
            a["fidelity_figure"],
            tuple(a["style_gain_ci"]),
            tuple(a["fidelity_loss_ci"]),
        )
        out.append(Placed(t, off))
    return out


def pareto_front(placed: list[Placed]) -> list[Placed]:
    """The trials no other trial beats on both axes (more style gain and no more fidelity loss, or the
    same gain for less loss), by increasing fidelity loss."""

    def beaten(p: Placed) -> bool:
        a = p.trade_off
        return any(
            (b.style_gain >= a.style_gain and b.fidelity_loss <= a.fidelity_loss)
            and (b.style_gain > a.style_gain or b.fidelity_loss < a.fidelity_loss)
            for b in (q.trade_off for q in placed)
        )

    return sorted((p for p in placed if not beaten(p)), key=lambda p: p.trade_off.fidelity_loss)


def chosen_trial(placed: list[Placed], tolerance: float) -> Placed | None:
    """The trial of ``placed`` the ranking rule picks (highest style gain within the fidelity budget)."""
    pick = best([p.trade_off for p in placed], tolerance)
    return next((p for p in placed if p.trade_off is pick), None)


def write_best_recipe(sweep: Sweep, chosen: Placed) -> Path:
    """``best.toml``: the chosen trial's recipe, evaluated at its adapter strength, run as ``<sweep>-best``."""
    from adaptkit.recipe.dump import dump_toml
    from adaptkit.recipe.loading import read_toml
    from adaptkit.run import RunDir

    data = read_toml(RunDir(sweep.folder.trial(chosen.folder)).recipe)
    data["run"] = {**data.get("run", {}), "name": f"{sweep.name}-best", "output_dir": str(sweep.folder.root.parent)}
    data.setdefault("eval", {}).update(adapter_scale=chosen.trial.user_attrs["adapter_scale"], adapter_scales=[])
    t = chosen.trade_off
    header = (
        f"# adaptkit run {sweep.folder.best_recipe}\n"
        f"# the recipe sweep {sweep.name} chose: {chosen.folder} (style gain {t.style_gain:+.3g}, "
        f"fidelity loss {t.fidelity_loss:+.3g}, adapter strength {chosen.trial.user_attrs['adapter_scale']:g})\n\n"
    )
    _write_atomic(sweep.folder.best_recipe, header + dump_toml(data))
    return sweep.folder.best_recipe


def _write_atomic(path: Path, text: str) -> None:
    """Workers rewrite the report after each trial; a reader never sees half a file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def plot_front(placed: list[Placed], front: list[Placed], chosen: Placed | None, tolerance: float) -> Any:
    """Style gain against fidelity loss with 95% intervals: every trial, the front, the budget line."""
    from adaptkit.evaluation.plots import plot_image, pyplot

    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    for p in placed:
        t = p.trade_off
        err_x = [
            [max(0.0, t.fidelity_loss - t.fidelity_loss_ci[0])],
            [max(0.0, t.fidelity_loss_ci[1] - t.fidelity_loss)],
        ]
        err_y = [[max(0.0, t.style_gain - t.style_gain_ci[0])], [max(0.0, t.style_gain_ci[1] - t.style_gain)]]
        marker = "s" if p.trial.user_attrs.get("baseline") else "o"
        axis.errorbar(t.fidelity_loss, t.style_gain, xerr=err_x, yerr=err_y, fmt=marker, color="tab:blue", alpha=0.5)
        axis.annotate(p.folder.removeprefix("trial-"), (t.fidelity_loss, t.style_gain), fontsize=7)
    axis.plot(
        [p.trade_off.fidelity_loss for p in front],
        [p.trade_off.style_gain for p in front],
        "-o",  # ringed, so a front of one point (or of tied trials) still shows
        markersize=11,
        markerfacecolor="none",
        color="tab:orange",
        label="Pareto front",
    )
    if placed:
        axis.axvline(
            tolerance * abs(placed[0].trade_off.base_fidelity),
            linestyle="--",
            color="gray",
            label=f"budget ({tolerance:.0%})",
        )
    if chosen is not None:
        axis.plot(
            chosen.trade_off.fidelity_loss,
            chosen.trade_off.style_gain,
            "*",
            markersize=16,
            color="tab:red",
            label=f"chosen ({chosen.folder})",
        )
    style = placed[0].trade_off.style_figure if placed else "style"
    fidelity = placed[0].trade_off.fidelity_figure if placed else "fidelity"
    axis.set_xlabel(f"fidelity loss ({fidelity}; lower is better)")
    axis.set_ylabel(f"style gain ({style})")
    axis.legend(fontsize=7)
    axis.grid(alpha=0.3)
    return plot_image(figure)


#: Fewer complete trials than this give no importances (Optuna would report them all equal).
MIN_TRIALS_FOR_IMPORTANCES = 4


def importances(study: Any) -> dict[str, float]:
    """Optuna's parameter importances (its default evaluator) over the complete trials; empty while
    there are fewer than :data:`MIN_TRIALS_FOR_IMPORTANCES`."""
    import optuna

    if len(finished_trials(study)) < MIN_TRIALS_FOR_IMPORTANCES:
        return {}
    try:
        with quiet_optuna_warnings():
            return dict(optuna.importance.get_param_importances(study))
    except (ValueError, RuntimeError, ZeroDivisionError):
        return {}


def _cell(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else html.escape(str(value))


def _interval(value: float, ci: Any) -> str:
    return f"{value:+.3g} [{ci[0]:+.3g}, {ci[1]:+.3g}]"


def trials_table(study: Any, sweep: Sweep, chosen: Placed | None, front: list[Placed]) -> str:
    """Every trial: state, values, strength, style gain and fidelity loss with intervals, links."""
    keys = list(sweep.spec.space)
    on_front = {p.trial.number for p in front}
    head = "".join(f"<th>{html.escape(k)}</th>" for k in ["trial", "state", *keys])
    head += "<th>strength</th><th>style gain [95% CI]</th><th>fidelity loss [95% CI]</th><th>seconds</th><th></th>"
    rows = []
    for t in study.get_trials(deepcopy=False):
        a, folder = t.user_attrs, t.user_attrs.get("folder", "")
        state = t.state.name.lower() + (f" at step {a['pruned_at']}" if "pruned_at" in a else "")
        cells = [folder + (" (baseline)" if a.get("baseline") else ""), state]
        cells += [_cell(t.params.get(k, "")) for k in keys]
        judged = "style_gain" in a
        cells += [
            _cell(a["adapter_scale"]) if judged else "",
            _interval(a["style_gain"], a["style_gain_ci"]) if judged else "",
            _interval(a["fidelity_loss"], a["fidelity_loss_ci"]) if judged else "",
            f"{a['seconds']:.0f}" if "seconds" in a else "",
        ]
        marks = ("◀ chosen " if chosen is not None and t.number == chosen.trial.number else "") + (
            "front" if t.number in on_front else ""
        )
        report = Path(folder) / "eval" / "report.html"
        link = f'<a href="{html.escape(str(report))}">report</a>' if judged else ""
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + f"<td>{marks} {link}</td></tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def write_report(sweep: Sweep, study: Any) -> Placed | None:
    """``report.html``, ``front.png`` and (once a trial is chosen) ``best.toml``; returns the chosen trial."""
    from PIL import Image

    from adaptkit.evaluation.html_images import img_tag
    from adaptkit.evaluation.report import page
    from adaptkit.evaluation.scales import SCALES_PNG
    from adaptkit.run import RunDir

    tolerance = sweep.spec.sweep.tolerance
    placed = placed_trials(study)
    front = pareto_front(placed)
    chosen = chosen_trial(placed, tolerance)
    s = sweep.spec.sweep
    settings = (
        f"<p>recipe <code>{html.escape(sweep.recipe)}</code>; budget {s.trials} trials or {s.minutes:g} minutes per "
        f"worker; storage <code>{html.escape(sweep.storage_url)}</code></p>"
        f"<p>rule: {html.escape(rule_text(tolerance))}</p><p>pruning: {html.escape(pruning_rule(sweep.spec))}</p>"
    )
    sections = [("Settings", settings)]
    if chosen is not None:
        write_best_recipe(sweep, chosen)
        t = chosen.trade_off
        text = (
            f"<p><b>{chosen.folder}</b>: style gain {_interval(t.style_gain, t.style_gain_ci)}, fidelity loss "
            f"{_interval(t.fidelity_loss, t.fidelity_loss_ci)} at adapter strength "
            f"{chosen.trial.user_attrs['adapter_scale']:g}. "
            f"Run it again with <code>adaptkit run {html.escape(str(sweep.folder.best_recipe))}</code>.</p>"
        )
        strengths = RunDir(sweep.folder.trial(chosen.folder)).eval / SCALES_PNG
        if strengths.is_file():
            with Image.open(strengths) as plot:
                text += img_tag(plot.convert("RGB"), "style gain and fidelity against adapter strength")
        sections.append(("Chosen trial", text))
    if placed:
        front_image = plot_front(placed, front, chosen, tolerance)
        temporary = sweep.folder.front_png.with_name(f".front.{os.getpid()}.png")
        front_image.save(temporary)
        os.replace(temporary, sweep.folder.front_png)
        sections.append(
            ("Style gain against fidelity loss (95% intervals; square = baseline)", img_tag(front_image, "front"))
        )
    sections.append(("Trials", trials_table(study, sweep, chosen, front)))
    found = importances(study)
    if found:
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td class=num>{v:.3f}</td></tr>" for k, v in found.items())
        sections.append(("Parameter importances (optuna.importance.get_param_importances)", f"<table>{rows}</table>"))
    _write_atomic(sweep.folder.report, page(f"adaptkit sweep: {sweep.name}", sections))
    return chosen
