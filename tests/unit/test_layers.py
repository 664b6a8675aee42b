"""The house's dependency line: every import under `shared/` points down, and no module cycle.

The imports are read from the source (`ast`), not by importing it, so an import inside a function
or under `if TYPE_CHECKING:` counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Container, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The layer order, top to bottom. A module may import from its own package and from any package
# in a lower layer; packages in one layer are peers and may not import each other. "__init__" is
# the package `shared` itself (`shared/__init__.py`).
#
# This refines the design's line (docs: ../shared/design.md, "The house"),
#   api -> (network, rerank) -> jobs -> (ledger, accounts) -> pricing
#       -> (circuits, suppliers, storage) -> config/errors,
# where the code has a real direction: the ledger sits above accounts (the ledger takes a
# Principal), suppliers above circuits (suppliers translate circuits), legal above signing (a
# license is verified) and config above the package itself (it reads the version); and it
# places the packages and modules that line leaves out. A new package or module of `shared/` fails
# `test_every_package_of_shared_has_a_place_in_the_layer_order` until it is placed here.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"api"}),
    frozenset({"http"}),
    frozenset({"services"}),
    frozenset({"network", "rerank", "stream", "webhooks"}),
    frozenset({"orchestration"}),
    frozenset({"jobs"}),
    frozenset({"ledger"}),
    frozenset({"accounts", "idempotency"}),
    frozenset({"pricing"}),
    frozenset({"suppliers"}),
    frozenset({"circuits"}),
    frozenset({"storage", "events", "legal", "telemetry"}),
    frozenset({"config", "errors", "clock", "signing"}),
    frozenset({"__init__"}),
)


@dataclass(frozen=True)
class Edge:
    """`importer` imports `imported`, at `path`:`line`."""

    importer: str
    imported: str
    path: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


# --- the checker: sources in (path -> text), problems out -------------------------------------


def module_name(path: str) -> str:
    """The dotted name of the module at `path`: `shared/jobs/__init__.py` is `shared.jobs`."""
    parts = path.removesuffix(".py").split("/")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def unit_of(module: str) -> str:
    """The package (or top-level module) of `shared` that `module` belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _known_prefix(name: str, known: Container[str]) -> str | None:
    """The longest module of `known` that `name` is, or lies inside."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in known:
            return candidate
    return None


def edges(sources: Mapping[str, str]) -> list[Edge]:
    """Every import of a module of `sources` by another, wherever it sits in the module."""
    modules = {module_name(path): path for path in sources}
    found: list[Edge] = []
    for path, text in sources.items():
        importer = module_name(path)
        is_package = path.endswith("/__init__.py")
        for node in ast.walk(ast.parse(text, filename=path)):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    package = importer.split(".") if is_package else importer.split(".")[:-1]
                    anchor = package[: len(package) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                # `from shared.jobs import models` imports the module shared.jobs.models;
                # `from shared.jobs.models import Job` imports shared.jobs.models.
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            else:
                continue
            for target in targets:
                imported = _known_prefix(target, modules)
                if imported is not None and imported != importer:
                    found.append(Edge(importer, imported, path, node.lineno))
    return sorted(set(found), key=lambda e: (e.path, e.line, e.imported))


def unplaced(sources: Mapping[str, str], layers: tuple[frozenset[str], ...] = LAYERS) -> list[str]:
    """The packages and top-level modules of `sources` that no layer names."""
    placed = set().union(*layers)
    return sorted({unit_of(module_name(path)) for path in sources} - placed)


def wrong_way(sources: Mapping[str, str], layers: tuple[frozenset[str], ...] = LAYERS) -> list[str]:
    """Each import of a package in the same layer or a higher one than the importer's."""
    rank = {unit: index for index, layer in enumerate(layers) for unit in layer}
    problems = []
    for edge in edges(sources):
        source, target = unit_of(edge.importer), unit_of(edge.imported)
        if source == target or source not in rank or target not in rank:
            continue  # within a package; an unplaced one is reported by `unplaced`
        if rank[target] < rank[source]:
            why = f"{source} may not import {target}"
        elif rank[target] == rank[source]:
            why = f"{source} may not import {target}, its peer in one layer"
        else:
            continue
        problems.append(f"{edge.where} imports {edge.imported} ({why})")
    return problems


def cycles(sources: Mapping[str, str]) -> list[str]:
    """One import cycle in each strongly connected set of modules (Tarjan), with its lines."""
    graph: dict[str, dict[str, Edge]] = {module_name(path): {} for path in sources}
    for edge in edges(sources):
        graph[edge.importer].setdefault(edge.imported, edge)  # the first line that imports it

    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
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
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)

    problems = []
    for component in sorted(components):
        loop = _shortest_cycle(component[0], graph, set(component))
        hops = [graph[a][b] for a, b in zip(loop, loop[1:], strict=False)]
        lines = ", ".join(f"{hop.where} imports {hop.imported}" for hop in hops)
        problem = f"import cycle: {' -> '.join(loop)} ({lines})"
        if len(component) > len(hops):  # more modules than this one cycle passes through
            problem += f"; all of: {', '.join(component)}"
        problems.append(problem)
    return problems


def _shortest_cycle(
    start: str, graph: Mapping[str, Mapping[str, Edge]], within: set[str]
) -> list[str]:
    """The shortest path start -> ... -> start inside one strongly connected set."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(graph[node]):
            if nxt not in within:
                continue
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    raise AssertionError(f"{start} is in no cycle")  # a strongly connected set always has one


def shared_sources() -> dict[str, str]:
    return {
        path.relative_to(ROOT).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted((ROOT / "shared").rglob("*.py"))
    }


# --- the checker, on a small made-up package --------------------------------------------------


MADE_UP = {
    "shared/__init__.py": '"""The package."""\n',
    "shared/config.py": "import os\n",
    "shared/jobs/__init__.py": "",
    "shared/jobs/metering.py": (
        "from shared.config import get\n"
        "from . import models\n"
        "def cost():\n"
        "    from shared.network import estimates\n"  # a function-level upward import
    ),
    "shared/jobs/models.py": "",
    "shared/jobs/repository.py": "from shared.jobs import worker\n",
    "shared/jobs/worker.py": (
        "def run():\n"
        "    from .repository import save\n"  # a function-level import that closes a cycle
    ),
    "shared/network/__init__.py": "",
    "shared/network/estimates.py": (
        "from typing import TYPE_CHECKING\n"
        "import shared.jobs.models\n"
        "if TYPE_CHECKING:\n"
        "    from shared.rerank.engine import Engine\n"  # a same-layer (peer) import
    ),
    "shared/rerank/__init__.py": "",
    "shared/rerank/engine.py": "from ..jobs import models\n",
    "shared/gadgets.py": "from shared import config\n",  # a module the order does not place
}
MADE_UP_LAYERS = (
    frozenset({"network", "rerank"}),
    frozenset({"jobs"}),
    frozenset({"config", "__init__"}),
)


def test_the_checker_finds_an_upward_import_a_peer_import_and_a_cycle() -> None:
    # given a made-up package with one of each, and a module no layer places
    # when / then
    assert wrong_way(MADE_UP, MADE_UP_LAYERS) == [
        "shared/jobs/metering.py:4 imports shared.network.estimates (jobs may not import network)",
        "shared/network/estimates.py:4 imports shared.rerank.engine"
        " (network may not import rerank, its peer in one layer)",
    ]
    assert cycles(MADE_UP) == [
        "import cycle: shared.jobs.repository -> shared.jobs.worker -> shared.jobs.repository"
        " (shared/jobs/repository.py:1 imports shared.jobs.worker,"
        " shared/jobs/worker.py:2 imports shared.jobs.repository)"
    ]
    assert unplaced(MADE_UP, MADE_UP_LAYERS) == ["gadgets"]


def test_the_checker_resolves_relative_and_package_imports_and_ignores_third_party_ones() -> None:
    # given / when
    found = {(e.importer, e.imported, e.line) for e in edges(MADE_UP)}
    # then
    assert ("shared.rerank.engine", "shared.jobs.models", 1) in found  # from ..jobs import models
    assert ("shared.gadgets", "shared.config", 1) in found  # from shared import config
    assert ("shared.network.estimates", "shared.jobs.models", 2) in found  # import a.b.c
    assert not any(e.importer == "shared.config" for e in edges(MADE_UP))  # import os


# --- the house ---------------------------------------------------------------------------------


def test_every_package_of_shared_has_a_place_in_the_layer_order() -> None:
    assert unplaced(shared_sources()) == []


def test_no_module_of_shared_imports_upward_or_from_a_peer() -> None:
    problems = wrong_way(shared_sources())
    assert problems == [], "\n" + "\n".join(problems)


def test_no_modules_of_shared_import_each_other_in_a_cycle() -> None:
    problems = cycles(shared_sources())
    assert problems == [], "\n" + "\n".join(problems)


def test_the_entry_point_only_composes_the_blueprints_of_shared_api() -> None:
    # given function_app.py, read as the other modules are
    sources = {**shared_sources(), "function_app.py": (ROOT / "function_app.py").read_text()}
    # when
    imported = {e.imported for e in edges(sources) if e.importer == "function_app"}
    # then
    assert imported == {"shared.api"}
