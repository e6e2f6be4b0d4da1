"""Campaigns: predicted value → who to contact, with what, when and through which channel.

A campaign is a YAML definition (:func:`load_campaign` → :class:`CampaignDefinition`): an
audience (active segments and/or an :class:`AudienceRule` on the score columns), a budget,
channels with their cost per message, variants with one Jinja template per channel, a holdout
share, an attribution window and a frequency cap. :func:`render_preview` renders one variant's
message for a given customer context in the template sandbox.

Nothing heavy is imported here: the submodules load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clv.campaigns.errors import CampaignError

if TYPE_CHECKING:
    from clv.campaigns.definition import (
        AudienceRule,
        CampaignDefinition,
        load_campaign,
        render_preview,
    )

__all__ = [
    "AudienceRule",
    "CampaignDefinition",
    "CampaignError",
    "load_campaign",
    "render_preview",
]

_LAZY = {
    "AudienceRule": "clv.campaigns.definition",
    "CampaignDefinition": "clv.campaigns.definition",
    "load_campaign": "clv.campaigns.definition",
    "render_preview": "clv.campaigns.definition",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'clv.campaigns' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
