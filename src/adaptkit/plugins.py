"""The plugin manager: built-ins, installed entry points, recipe-listed modules.

Load order (each through the same hooks):

1. the built-in plugins in :data:`DEFAULT_PLUGINS` (datasette style: always loaded, so a
   source checkout works without being installed and an allowlist cannot hide the core);
2. installed distributions in the ``adaptkit`` entry-point group, limited by the
   comma-separated allowlist ``ADAPTKIT_LOAD_PLUGINS`` when it is set (empty = none);
3. modules a recipe lists under ``[plugins] modules = [...]`` (a dotted module name, or a
   path to a ``.py`` file relative to the recipe).

``ADAPTKIT_TRACE_PLUGINS=1`` prints each hook call with its arguments and results.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Generic, TypeVar

import pluggy

from adaptkit import hookspecs
from adaptkit.component import (
    BaseModels,
    Component,
    DatasetAdapter,
    Method,
    Metric,
    ModelFamily,
    Optimizer,
    Sampler,
)
from adaptkit.errors import PluginError, UserError

ENTRY_POINT_GROUP = "adaptkit"

DEFAULT_PLUGINS: tuple[str, ...] = (
    "adaptkit.builtins.families",
    "adaptkit.builtins.datasets",
    "adaptkit.builtins.methods",
    "adaptkit.builtins.samplers",
    "adaptkit.builtins.optimizers",
    "adaptkit.builtins.metrics.style",
    "adaptkit.builtins.metrics.clip_score",
    "adaptkit.builtins.metrics.content",
    "adaptkit.builtins.metrics.kid",
    "adaptkit.builtins.metrics.cmmd",
    "adaptkit.builtins.reports",
    "adaptkit.builtins.trackers",
    "adaptkit.embedded.plugin",
    "adaptkit.testing.bases",
)

C = TypeVar("C", bound=Component)


@dataclass(frozen=True)
class Registration(Generic[C]):
    """A registered component class and the plugin that registered it."""

    cls: type[C]
    plugin: str
    distribution: str | None = None


class Registry(Generic[C]):
    """Components of one kind, by name. A name registered twice is an error naming both plugins."""

    def __init__(self, kind: str, base: type[C]) -> None:
        self.kind = kind
        self.base = base
        self._entries: dict[str, Registration[C]] = {}

    def add(self, cls: type[C], plugin: str, distribution: str | None = None) -> None:
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise PluginError(
                f"plugin {plugin}: register_{self.kind}s got {cls!r}, expected a subclass of {self.base.__name__}"
            )
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {plugin}: {cls.__name__} has no 'name'")
        if name in self._entries:
            other = self._entries[name]
            raise PluginError(
                f"{self.kind} '{name}' is registered twice: by plugin {other.plugin} "
                f"({other.cls.__module__}.{other.cls.__qualname__}) and by plugin {plugin} "
                f"({cls.__module__}.{cls.__qualname__})"
            )
        self._entries[name] = Registration(cls, plugin, distribution)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> Registration[C]:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self):
        return iter(sorted(self._entries.items()))

    def unknown_message(self, name: str) -> str:
        """``unknown method 'lorx' (registered: full, lora, loha)``."""
        return f"unknown {self.kind} '{name}' (registered: {', '.join(self.names()) or 'none'})"


class PluginManager:
    """adaptkit's pluggy manager plus the component registries it fills."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self._distributions: dict[str, str] = {}
        self.tracing = bool(os.environ.get("ADAPTKIT_TRACE_PLUGINS"))
        if self.tracing:
            self._enable_tracing()

    # -- loading ------------------------------------------------------------------

    def load_builtins(self) -> None:
        for module_name in DEFAULT_PLUGINS:
            self._register(importlib.import_module(module_name), module_name)

    def load_entry_points(self, allow: Iterable[str] | None = None) -> None:
        """Load installed ``adaptkit`` entry points; ``allow`` limits them by entry-point or distribution name."""
        allowed = None if allow is None else {a.strip() for a in allow if a.strip()}
        for dist in importlib.metadata.distributions():
            for ep in dist.entry_points:
                if ep.group != ENTRY_POINT_GROUP or self.pm.has_plugin(ep.name):
                    continue
                dist_name = dist.metadata["Name"]
                if allowed is not None and ep.name not in allowed and dist_name not in allowed:
                    continue
                try:
                    module = ep.load()
                except Exception as exc:  # a broken third-party plugin must not look like our crash
                    raise PluginError(
                        f"plugin {ep.name} (distribution {dist_name}) failed to import: {type(exc).__name__}: {exc}"
                    ) from exc
                self._distributions[ep.name] = dist_name
                self._register(module, ep.name)

    def load_modules(self, modules: Iterable[str], base_dir: Path | None = None, source: str = "recipe") -> None:
        """Load plugin modules named by a recipe: dotted names, or ``.py`` paths relative to ``base_dir``."""
        for spec in modules:
            module = _import_plugin_module(spec, base_dir, source)
            if not self.pm.is_registered(module):
                self._register(module, module.__name__)

    def _register(self, module: ModuleType, name: str) -> None:
        try:
            self.pm.register(module, name=name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {name}: {exc}") from exc
        except ValueError as exc:  # already registered under another name
            raise PluginError(f"plugin {name}: {exc}") from exc

    # -- registries ---------------------------------------------------------------

    def collect(self) -> "Components":
        """Call every registration hook and return the filled registries."""
        registries = Components(
            datasets=Registry("dataset", DatasetAdapter),
            methods=Registry("method", Method),
            samplers=Registry("sampler", Sampler),
            metrics=Registry("metric", Metric),
            base_models=Registry("base_model", BaseModels),
            model_families=Registry("model_family", ModelFamily),
            optimizers=Registry("optimizer", Optimizer),
        )
        for kind, registry in registries.by_kind().items():
            hook = getattr(self.pm.hook, f"register_{kind}")
            for impl in hook.get_hookimpls():
                plugin_name = impl.plugin_name

                def register(cls: Any, _plugin: str = plugin_name, _registry: Registry = registry) -> None:
                    _registry.add(cls, _plugin, self._distributions.get(_plugin))

                # Called per implementation (not through the hook caller) so each registration
                # is attributed to its plugin; traced here for the same reason.
                if self.tracing:
                    _trace(f"register_{kind}(register=<{plugin_name}>)")
                result = impl.function(register=register)
                if self.tracing:
                    _trace(f"register_{kind} -> {result!r}")
        return registries

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def _enable_tracing(self) -> None:
        def before(hook_name: str, hook_impls: Any, kwargs: dict[str, Any]) -> None:
            _trace(f"{hook_name}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})")

        def after(outcome: Any, hook_name: str, hook_impls: Any, kwargs: dict[str, Any]) -> None:
            try:
                result = outcome.get_result()
            except BaseException as exc:  # noqa: BLE001 - tracing only reports
                result = f"raised {exc!r}"
            _trace(f"{hook_name} -> {result!r}")

        self.pm.add_hookcall_monitoring(before, after)


@dataclass
class Components:
    """The registries of every component kind."""

    datasets: Registry[DatasetAdapter]
    methods: Registry[Method]
    samplers: Registry[Sampler]
    metrics: Registry[Metric]
    base_models: Registry[BaseModels]
    model_families: Registry[ModelFamily]
    optimizers: Registry[Optimizer]

    def by_kind(self) -> dict[str, Registry[Any]]:
        """Each registry under the plural its hook is named after (``register_<kind>``)."""
        return {
            "datasets": self.datasets,
            "methods": self.methods,
            "samplers": self.samplers,
            "metrics": self.metrics,
            "base_models": self.base_models,
            "model_families": self.model_families,
            "optimizers": self.optimizers,
        }


def _trace(message: str) -> None:
    print(f"[adaptkit trace] {message}", file=sys.stderr)


def _import_plugin_module(spec: str, base_dir: Path | None, source: str) -> ModuleType:
    if spec.endswith(".py"):
        path = Path(spec)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            raise PluginError(f"{source}: plugins.modules: no such file {str(path)!r}")
        module_name = f"adaptkit_local_plugin_{path.stem}"
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        assert loader_spec is not None and loader_spec.loader is not None
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = module
        try:
            loader_spec.loader.exec_module(module)
        except Exception as exc:
            raise PluginError(
                f"{source}: plugins.modules: {spec} failed to import: {type(exc).__name__}: {exc}"
            ) from exc
        return module
    added = False
    if base_dir is not None and str(base_dir) not in sys.path:
        sys.path.insert(0, str(base_dir))
        added = True
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        raise PluginError(f"{source}: plugins.modules: cannot import module {spec!r} ({exc})") from exc
    except Exception as exc:
        raise PluginError(f"{source}: plugins.modules: {spec} failed to import: {type(exc).__name__}: {exc}") from exc
    finally:
        if added:
            sys.path.remove(str(base_dir))


def allowlist_from_env() -> list[str] | None:
    """``ADAPTKIT_LOAD_PLUGINS`` as a list (``None`` when unset: load every installed plugin)."""
    value = os.environ.get("ADAPTKIT_LOAD_PLUGINS")
    if value is None:
        return None
    return [item for item in (part.strip() for part in value.split(",")) if item]


def get_plugin_manager(
    modules: Iterable[str] = (), base_dir: Path | None = None, source: str = "recipe"
) -> PluginManager:
    """A plugin manager with built-ins, allowed entry points and the given local modules loaded."""
    manager = PluginManager()
    manager.load_builtins()
    manager.load_entry_points(allowlist_from_env())
    if modules:
        manager.load_modules(modules, base_dir, source)
    return manager


__all__ = ["PluginManager", "Registry", "Registration", "Components", "get_plugin_manager", "UserError"]
