"""The strength an adapter is applied at, without retraining: every peft adapter layer of a pipeline
has its ``scaling`` multiplied by one factor (LoRA, DoRA, LoHa, LoKr; a LoRA loaded by diffusers is
peft layers too). ``1.0`` is the adapter as trained.

The factor is always taken from the trained scaling (kept on the layer the first time), never from the
current one, so ``set_adapter_scale(p, 0.5)`` then ``set_adapter_scale(p, 1.0)`` gives back exactly
the trained weights.
"""

from __future__ import annotations

from typing import Any

from adaptkit.errors import UserError

#: Where a layer keeps its trained ``scaling`` once it has been rescaled.
_TRAINED_SCALING = "_adaptkit_trained_scaling"


def adapter_layers(pipeline: Any) -> list[Any]:
    """The peft adapter layers of ``pipeline``'s modules that carry a per-adapter ``scaling`` dict."""
    from peft.tuners.oft.layer import OFTLayer
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = []
    for component in pipeline.components.values():
        modules = component.modules() if hasattr(component, "modules") else ()
        layers += [
            m
            for m in modules
            if isinstance(m, BaseTunerLayer)
            and not isinstance(m, OFTLayer)  # peft 0.21: OFT ignores its scale (it warns and keeps 1)
            and isinstance(getattr(m, "scaling", None), dict)
        ]
    return layers


def set_adapter_scale(pipeline: Any, scale: float, key: str = "eval.adapter_scale") -> Any:
    """``pipeline`` with every adapter layer at ``scale`` × its trained strength (in place; returned).

    A pipeline without scalable adapter layers (a full fine-tune, a textual inversion, OFT) is a
    one-line :class:`UserError` naming ``key`` when ``scale`` is not 1.
    """
    layers = adapter_layers(pipeline)
    if not layers:
        if scale == 1.0:
            return pipeline
        raise UserError(
            f"{key} = {scale}: this model has no adapter layers to scale (a full fine-tune, textual inversion "
            "or OFT result); only LoRA, DoRA, LoHa and LoKr adapters have a strength (use 1.0)"
        )
    for layer in layers:
        trained = getattr(layer, _TRAINED_SCALING, None)
        if trained is None:
            trained = dict(layer.scaling)
            setattr(layer, _TRAINED_SCALING, trained)
        for adapter, value in trained.items():
            layer.scaling[adapter] = value * scale
    return pipeline
