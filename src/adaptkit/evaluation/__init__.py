"""Evaluation: paired base/adapted generations scored by metric plugins (see :mod:`.context`)."""

from adaptkit.evaluation.context import EvalContext, EvalPairs, Figure, MetricUnavailable

__all__ = ["EvalContext", "EvalPairs", "Figure", "MetricUnavailable"]
