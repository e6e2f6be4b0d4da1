"""Prefect automations as code: the files in ``automations/`` and their notification block.

``make deploy`` runs ``python -m flows.automations`` after ``prefect deploy --all``. It

1. saves the webhook notification block ``clv-alerts`` (a ``CustomWebhookNotificationBlock``)
   whose URL comes from ``CLV_ALERT_WEBHOOK_URL``; the URL is kept in the block's secrets, so
   the API and the UI show it obfuscated;
2. reads every ``*.yaml`` / ``*.yml`` / ``*.json`` file of the folder: one automation each, in
   Prefect's automation schema (what ``prefect automation create --from-file`` reads) except
   that a ``send-notification`` action names its block (``notification_block: clv-alerts``)
   instead of giving a ``block_document_id``;
3. creates each automation, or updates the one of the same name in place, so running it twice
   changes nothing; duplicates of a name left by hand are deleted, and so is any automation
   this module created earlier (tag ``clv-automations``) whose file is gone. Automations it did
   not create (the deployments' triggers of ``prefect.yaml``, anything made in the UI) are never
   touched.

Without ``CLV_ALERT_WEBHOOK_URL`` nothing is created or changed: every automation here notifies
through that webhook. The command says so and exits 0 (the deployments are useful without
alerts), or exits 2 with ``--require-webhook`` (for a production pipeline that must not deploy
silently without alerting).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import yaml

if TYPE_CHECKING:
    from uuid import UUID

    from prefect.client.orchestration import SyncPrefectClient
    from prefect.events.schemas.automations import AutomationCore

#: The repository's automation files.
AUTOMATIONS_DIR = Path(__file__).resolve().parents[1] / "automations"
#: The environment variable with the webhook URL the notification block posts to.
WEBHOOK_ENV = "CLV_ALERT_WEBHOOK_URL"
#: The name of the notification block the files refer to (``notification_block``).
BLOCK_NAME = "clv-alerts"
#: The tag that marks the automations this module manages (and may delete when a file goes).
MANAGED_TAG = "clv-automations"
SUFFIXES = (".yaml", ".yml", ".json")

#: What the block posts: ``text`` for Slack/Mattermost-style incoming webhooks, and the subject
#: and body apart for anything that reads JSON.
WEBHOOK_JSON: dict[str, Any] = {
    "text": "{{subject}}\n{{body}}",
    "subject": "{{subject}}",
    "body": "{{body}}",
}


class DefinitionError(ValueError):
    """An automation file that cannot be read or is not a valid automation."""


@dataclass
class ApplyResult:
    """What :func:`apply_automations` did, by automation name."""

    block_document_id: UUID | None = None
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def load_definitions(folder: Path = AUTOMATIONS_DIR) -> dict[str, dict[str, Any]]:
    """The automation definitions of ``folder``, by automation name (file order).

    Raises
    ------
    DefinitionError
        A file that is not a mapping with a ``name``, or a name used by two files.
    """
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)
    if not files:
        raise DefinitionError(f"{folder}: no automation files ({', '.join(SUFFIXES)})")
    definitions: dict[str, dict[str, Any]] = {}
    sources: dict[str, Path] = {}
    for path in files:
        text = path.read_text(encoding="utf-8")
        try:
            data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise DefinitionError(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise DefinitionError(f"{path}: expected one automation, a mapping with a 'name'")
        name = data["name"]
        if name in sources:
            raise DefinitionError(f"{path}: automation name {name!r} is also in {sources[name]}")
        sources[name] = path
        definitions[name] = data
    return definitions


def block_names(definitions: dict[str, dict[str, Any]]) -> set[str]:
    """The notification blocks the definitions refer to."""
    return {
        action["notification_block"]
        for data in definitions.values()
        for key in ("actions", "actions_on_trigger", "actions_on_resolve")
        for action in data.get(key) or []
        if isinstance(action, dict) and "notification_block" in action
    }


def resolve(data: dict[str, Any], blocks: dict[str, UUID]) -> AutomationCore:
    """One definition as a validated Prefect automation, its block names replaced by ids.

    Raises
    ------
    DefinitionError
        An unknown block name, or a trigger or action Prefect rejects (the message says which).
    """
    from prefect.events.schemas.automations import AutomationCore
    from pydantic import ValidationError

    name = data["name"]
    resolved = dict(data)
    for key in ("actions", "actions_on_trigger", "actions_on_resolve"):
        actions = []
        for action in data.get(key) or []:
            action = dict(action)
            block = action.pop("notification_block", None)
            if block is not None:
                if block not in blocks:
                    raise DefinitionError(
                        f"automation {name!r}: unknown notification_block {block!r} "
                        f"(this module saves {', '.join(sorted(blocks))})"
                    )
                action["block_document_id"] = str(blocks[block])
            actions.append(action)
        if key in data:
            resolved[key] = actions
    resolved["tags"] = sorted({*(data.get("tags") or []), MANAGED_TAG})
    try:
        return AutomationCore.model_validate(resolved)
    except ValidationError as exc:
        raise DefinitionError(f"automation {name!r}: {exc}") from exc


def check_webhook_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL; a ``ValueError`` naming the variable if not."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{WEBHOOK_ENV} must be an http(s) URL, got {url!r}")
    return url


def save_notification_block(url: str, *, name: str = BLOCK_NAME) -> UUID:
    """Save (create or overwrite) the webhook notification block; return its document id."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    block = CustomWebhookNotificationBlock(
        name=name,
        url="{{webhook_url}}",  # filled from the secrets when it sends
        method="POST",
        json_data=WEBHOOK_JSON,
        secrets={"webhook_url": check_webhook_url(url)},
    )
    block_document_id: UUID = block.save(name, overwrite=True)  # type: ignore[assignment]
    return block_document_id


def _sync(client: SyncPrefectClient, automation: AutomationCore, result: ApplyResult) -> None:
    existing = client.read_automations_by_name(automation.name)
    if not existing:
        client.create_automation(automation)
        result.created.append(automation.name)
        return
    first, *duplicates = sorted(existing, key=lambda a: str(a.id))
    client.update_automation(first.id, automation)
    result.updated.append(automation.name)
    for duplicate in duplicates:
        client.delete_automation(duplicate.id)
        result.deleted.append(f"{automation.name} (duplicate {duplicate.id})")


def apply_automations(
    webhook_url: str, folder: Path = AUTOMATIONS_DIR, *, prune: bool = True
) -> ApplyResult:
    """Save the notification block and create or update the automations of ``folder``.

    Idempotent: automations are matched by name. Talks to the server at ``PREFECT_API_URL``.

    Parameters
    ----------
    webhook_url : str
        Where the notification block posts (``CLV_ALERT_WEBHOOK_URL``).
    folder : Path
        The automation files (default: the repository's ``automations/``).
    prune : bool
        Delete automations tagged ``clv-automations`` whose file is no longer in ``folder``.

    Returns
    -------
    ApplyResult
        The block's id and the names created, updated and deleted.
    """
    from prefect.client.orchestration import get_client

    definitions = load_definitions(folder)
    unknown = block_names(definitions) - {BLOCK_NAME}
    if unknown:
        raise DefinitionError(
            f"{folder}: unknown notification_block {', '.join(sorted(unknown))} "
            f"(only {BLOCK_NAME!r} is saved, from {WEBHOOK_ENV})"
        )
    # Validate every file before changing anything on the server.
    placeholder_blocks: dict[str, UUID] = {}
    if block_names(definitions):
        from uuid import uuid4

        placeholder_blocks = {BLOCK_NAME: uuid4()}
    for data in definitions.values():
        resolve(data, placeholder_blocks)

    block_document_id = save_notification_block(webhook_url)
    result = ApplyResult(block_document_id=block_document_id)
    blocks = {BLOCK_NAME: block_document_id}
    with get_client(sync_client=True) as client:
        for data in definitions.values():
            _sync(client, resolve(data, blocks), result)
        if prune:
            for automation in client.read_automations():
                if MANAGED_TAG in automation.tags and automation.name not in definitions:
                    client.delete_automation(automation.id)
                    result.deleted.append(automation.name)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m flows.automations [--dir DIR] [--require-webhook]``."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.automations",
        description=(
            "Create or update the Prefect automations in DIR and their webhook notification "
            f"block on the server at PREFECT_API_URL; the webhook URL comes from {WEBHOOK_ENV}."
        ),
    )
    parser.add_argument("--dir", type=Path, default=AUTOMATIONS_DIR, help="automation files")
    parser.add_argument(
        "--require-webhook",
        action="store_true",
        help=f"fail (exit 2) instead of skipping when {WEBHOOK_ENV} is not set",
    )
    parser.add_argument(
        "--no-prune",
        action="store_true",
        help="keep managed automations whose file is gone",
    )
    args = parser.parse_args(argv)

    try:
        definitions = load_definitions(args.dir)
    except DefinitionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    url = os.environ.get(WEBHOOK_ENV, "").strip()
    if not url:
        message = (
            f"{WEBHOOK_ENV} is not set: the {len(definitions)} automations in {args.dir} "
            f"({', '.join(definitions)}) notify through a webhook and were NOT created or "
            f"changed. Set {WEBHOOK_ENV} to the webhook's URL (a Slack incoming webhook, or any "
            "endpoint that accepts a JSON POST) and run `make deploy` again."
        )
        if args.require_webhook:
            print(f"error: {message}", file=sys.stderr)
            return 2
        print(f"warning: {message}", file=sys.stderr)
        return 0
    from prefect.settings import get_current_settings

    if not get_current_settings().api.url:
        print("error: set PREFECT_API_URL to the Prefect server's API", file=sys.stderr)
        return 1
    try:
        result = apply_automations(url, args.dir, prune=not args.no_prune)
    except (DefinitionError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"notification block {BLOCK_NAME!r}: {result.block_document_id}")
    for verb, names in (
        ("created", result.created),
        ("updated", result.updated),
        ("deleted", result.deleted),
    ):
        for name in names:
            print(f"automation {verb}: {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
