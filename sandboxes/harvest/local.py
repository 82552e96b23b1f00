"""The Harvest plug-in's sandbox factory (``SystemSpec.sandbox``): a fresh account and settings that reach it."""

from __future__ import annotations

from accord.connectors.harvest.settings import HarvestSettings
from accord.sandboxes.harvest.sandbox import HarvestState, build_app
from accord.sandboxes.local import Simulator


def settings(state: HarvestState, base_url: str) -> HarvestSettings:
    return HarvestSettings(base_url=base_url, account_id=state.account_id, access_token=sorted(state.tokens)[0])


def local(*, quota_scale: float = 1.0) -> Simulator[HarvestState]:
    return Simulator(HarvestState(quota_scale=quota_scale), build_app, settings)
