"""The one error the campaigns package raises for a problem a user can fix."""

from __future__ import annotations

__all__ = ["CampaignError"]


class CampaignError(ValueError):
    """A campaign definition, rule or template is unusable; the message says what and where.

    Messages name the file and line (for a YAML definition), the field path (for example
    ``variants[1].templates.email.subject``) or the rule's column, and what to change. The CLI
    prints the message and exits with status 2; it never shows a traceback.
    """
