"""The Harvest plug-in's sandbox factory (``SystemSpec.sandbox``): a fresh account and settings that reach it."""

from __future__ import annotations

from typing import Any

from accord.connectors.harvest.settings import HarvestSettings
from accord.sandboxes.harvest.sandbox import HarvestState, build_app


class LocalHarvest:
    def __init__(self, **options: Any) -> None:
        self.state = HarvestState(**options)

    def app(self) -> Any:
        return build_app(self.state)

    def settings(self, base_url: str) -> HarvestSettings:
        return HarvestSettings(base_url=base_url, account_id=self.state.account_id,
                               access_token=sorted(self.state.tokens)[0])


def local() -> LocalHarvest:
    return LocalHarvest()
