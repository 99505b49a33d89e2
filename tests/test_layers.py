"""The house rule (docs/ARCHITECTURE.md): imports point one way, down the layers, and no two
modules import each other, directly or round a loop.

Every module's imports are read from its source (ast; nothing is imported), lazy ones inside
functions and those under ``if TYPE_CHECKING:`` included: a lazy import still makes the
importing module depend on the imported one, it only moves when the cost is paid.
"""
from __future__ import annotations

import ast
import configparser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lowest first. A module belongs to the longest name below that starts it; it may import its
# own part and the parts of lower layers, never a higher layer nor a peer on its own layer.
LAYERS: list[tuple[str, ...]] = [
    ("mre.util",),                                   # helpers for all (crash-safe writes, file names)
    ("mre.embedder.audio", "mre.embedder.words"),    # audio in; words in: peers, unaware of each other
    ("mre.embedder.models",),                        # the models, built on audio and words
    ("mre.embedder",),                               # the batch runner and the package's entry points
    ("mre.indexer", "mre.training"),                 # stores; training the models: peers
    ("mre.retrieval",),                              # searching stores (reads what the indexer wrote)
    ("mre.benchmarks",),                             # measures every library layer below it
    ("mre.cli",),                                    # the commands, on top of everything
]


def _package_dirs() -> dict[str, Path]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    pairs = (line.split("=") for line in config["options"]["package_dir"].strip().splitlines())
    return {name.strip(): ROOT / folder.strip() for name, folder in pairs}


def _modules() -> dict[str, Path]:
    modules = {}
    for package, folder in _package_dirs().items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join([package, *parts])] = path
    return modules


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The mre modules ``name`` imports (a name imported from a package counts as its sub-module
    where one exists, else as the package)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if is_package else name.split(".")[:-1]
                here = here[:len(here) - (node.level - 1)]
                base = ".".join(here + ([node.module] if node.module else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:  # `import mre.x.y.attr`-style: the module that holds it
                target = target.rpartition(".")[0]
            if target.startswith("mre.") and target != name:
                found.add(target)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _part(module: str) -> tuple[int, str]:
    """(layer, part) of a module: the longest layer name that is the module or a package above it."""
    best = None
    for level, parts in enumerate(LAYERS):
        for part in parts:
            if (module == part or module.startswith(part + ".")) and (best is None or len(part) > len(best[1])):
                best = (level, part)
    assert best is not None, f"{module} is in no layer: add its package to LAYERS (and to docs/ARCHITECTURE.md)"
    return best


def test_every_package_has_a_layer():
    for module in MODULES:
        _part(module)


def test_no_module_imports_a_layer_above_it_or_a_peer():
    wrong = []
    for module, imported in sorted(GRAPH.items()):
        level, part = _part(module)
        for target in sorted(imported):
            target_level, target_part = _part(target)
            if target_part != part and target_level >= level:
                where = "above" if target_level > level else "beside"
                wrong.append(f"{module} imports {target}, a layer {where} it ({target_part})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles_between_modules():
    # Tarjan's strongly connected components: any with two or more modules is a cycle.
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in GRAPH.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize("rule", ["upward", "cycle"])
def test_the_checks_catch_what_they_are_for(rule, monkeypatch):
    """The two checks fail on a graph that breaks them (so a pass above means something)."""
    graph = {name: set(imported) for name, imported in GRAPH.items()}
    if rule == "upward":
        graph["mre.embedder.words.space"].add("mre.embedder.models.registry")
        monkeypatch.setitem(globals(), "GRAPH", graph)
        with pytest.raises(AssertionError, match="a layer above"):
            test_no_module_imports_a_layer_above_it_or_a_peer()
    else:
        graph["mre.embedder.words.errors"].add("mre.embedder.words.minilm")  # minilm imports errors
        monkeypatch.setitem(globals(), "GRAPH", graph)
        with pytest.raises(AssertionError, match="import cycles"):
            test_no_import_cycles_between_modules()
