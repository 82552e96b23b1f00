"""Every registered system plug-in keeps the contract: its settings are tagged by its kind, its sandbox
starts, and a connector built through the registry reads every entity it lists from that sandbox."""

from __future__ import annotations

import pytest

from accord.config.systems import SystemSettings, plugins
from accord.connectors.base import Page
from accord.connectors.registry import build_connector, spec_for_kind
from accord.sandboxes.local import start_local

BUILT_IN = ("harvest", "quickbooks", "salesforce")


def test_the_built_in_systems_are_registered_through_entry_points() -> None:
    assert set(BUILT_IN) <= set(plugins())


@pytest.mark.parametrize("kind", BUILT_IN)
def test_a_plugin_settings_type_is_tagged_with_its_kind(kind: str) -> None:
    spec = spec_for_kind(kind)
    assert spec is not None and spec.kind == kind
    assert issubclass(spec.settings, SystemSettings)
    assert spec.settings.__struct_config__.tag == kind


@pytest.mark.parametrize("kind", BUILT_IN)
async def test_a_connector_built_from_the_registry_reads_its_sandbox(kind: str) -> None:
    spec = spec_for_kind(kind)
    assert spec is not None and spec.sandbox is not None
    running = start_local(spec.sandbox)
    try:
        connector = build_connector(f"my_{kind}", running.settings)
        try:
            assert connector.system == f"my_{kind}"
            for entity in connector.entities():
                page = await connector.fetch(entity, None)
                assert isinstance(page, Page), entity
                assert isinstance(connector.cursor_since(entity, 0), str)
        finally:
            await connector.aclose()
    finally:
        running.stop()


def test_an_unknown_settings_type_is_refused_by_name() -> None:
    from accord.config.systems import PluginError
    from accord.connectors.registry import spec_of

    class Stray(SystemSettings, frozen=True, tag="stray"):
        pass

    with pytest.raises(PluginError, match="Stray"):
        spec_of(Stray())
