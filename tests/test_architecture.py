"""The layout holds: no import circle between packages, and plugins use only the public API.

Read from the source with ``ast`` (nothing is imported): every ``import`` counts, at module level
or inside a function, except those under ``if TYPE_CHECKING:`` (annotations only).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import adaptkit

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "adaptkit"
PLUGINS = ROOT / "plugins"
#: The modules a third-party plugin may import: the package itself and its test kit (and their submodules).
PUBLIC_PACKAGES = ("adaptkit.testing",)


def is_public(module: str) -> bool:
    """``adaptkit`` itself, or ``adaptkit.testing`` and what lies under it."""
    return module == "adaptkit" or any(module == p or module.startswith(f"{p}.") for p in PUBLIC_PACKAGES)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def runtime_imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[str, list[str]]]:
    """``(imported module, names)`` for every import outside ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if is_type_checking_block(node):
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base, [alias.name for alias in node.names]
        stack.extend(ast.iter_child_nodes(node))


def room(module: str) -> str:
    """The package a module lives in; a module of the package root is a room of its own (the contracts)."""
    path = PACKAGE.parent.joinpath(*module.split("."))
    if path.is_dir():
        return module
    parent = module.rsplit(".", 1)[0]
    return module if parent == "adaptkit" else parent


def package_graph() -> dict[str, dict[str, str]]:
    """``{room: {room it imports: "file -> module" (one example)}}`` over ``src/adaptkit``."""
    graph: dict[str, dict[str, str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        source = room(module)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for imported, names in runtime_imports(tree, module, path.name == "__init__.py"):
            if not imported.startswith("adaptkit"):
                continue
            # ``from adaptkit.training import checkpoint`` imports the module adaptkit.training.checkpoint
            targets = [imported]
            if PACKAGE.parent.joinpath(*imported.split(".")).is_dir():
                targets = [
                    f"{imported}.{n}"
                    if PACKAGE.parent.joinpath(*imported.split("."), f"{n}.py").is_file()
                    else imported
                    for n in names
                ] or [imported]
            for target in targets:
                if target == "adaptkit":  # the public API re-exports; it is no room of the code's own
                    continue
                dest = room(target)
                if dest != source and not dest.startswith(f"{source}.") and not source.startswith(f"{dest}."):
                    graph.setdefault(source, {}).setdefault(dest, f"{path.relative_to(ROOT)} -> {target}")
    return graph


def find_cycle(graph: dict[str, dict[str, str]]) -> list[str] | None:
    state: dict[str, int] = {}
    trail: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        trail.append(node)
        for nxt in graph.get(node, {}):
            if state.get(nxt) == 1:
                return trail[trail.index(nxt) :] + [nxt]
            if not state.get(nxt):
                found = visit(nxt)
                if found:
                    return found
        state[node] = 2
        trail.pop()
        return None

    for node in sorted(graph):
        if not state.get(node):
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_circle_between_packages() -> None:
    graph = package_graph()
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + "; ".join(
        graph[a][b]
        for a, b in zip(cycle, cycle[1:])  # type: ignore[arg-type]
    )


def test_the_cycle_finder_finds_a_circle() -> None:
    assert find_cycle({"a": {"b": ""}, "b": {"c": ""}, "c": {"a": ""}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": ""}, "b": {}}) is None


def test_methods_depend_on_interop_never_the_reverse() -> None:
    graph = package_graph()
    assert "adaptkit.interop" in graph["adaptkit.builtins.methods"]
    plugins = [why for room, why in graph["adaptkit.interop"].items() if room.startswith("adaptkit.builtins")]
    assert not plugins, plugins


def plugin_imports() -> Iterator[tuple[Path, str, list[str]]]:
    for path in sorted(PLUGINS.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for imported, names in runtime_imports(tree, "", False):
            if imported == "adaptkit" or imported.startswith("adaptkit."):
                yield path, imported, names


def test_plugins_import_only_the_public_api() -> None:
    seen = list(plugin_imports())
    assert len(seen) >= 5, "the plugins import adaptkit somewhere"
    private = [f"{path.relative_to(ROOT)}: {imported}" for path, imported, _ in seen if not is_public(imported)]
    assert not private, f"plugins import private modules: {private}"
    missing = [
        f"{path.relative_to(ROOT)}: {name}"
        for path, imported, names in seen
        if imported == "adaptkit"
        for name in names
        if name not in adaptkit.__all__
    ]
    assert not missing, f"not in adaptkit.__all__: {missing}"


def test_only_the_package_and_its_test_kit_are_public() -> None:
    assert is_public("adaptkit") and is_public("adaptkit.testing") and is_public("adaptkit.testing.tiny_sd3")
    assert not is_public("adaptkit.interop.export") and not is_public("adaptkit.testingkit")


def test_every_public_name_resolves() -> None:
    for name in adaptkit.__all__:
        assert getattr(adaptkit, name) is not None, name


def test_every_package_says_what_lives_there() -> None:
    for init in sorted(PACKAGE.rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and len(doc) > 20, f"{init.relative_to(ROOT)} needs a docstring saying what lives there"


def test_the_package_root_holds_only_the_contracts() -> None:
    modules = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert modules == ["__init__", "__main__", "component", "errors", "hookspecs", "plugins", "resolve", "run"]
