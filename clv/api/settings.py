"""The serving API's settings, from ``CLV_API_*`` environment variables."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["ApiSettings"]


class ApiSettings(BaseSettings):
    """What ``clv serve`` reads from the environment.

    Attributes
    ----------
    keys : list of SecretStr
        ``CLV_API_KEYS``: comma-separated API keys; every route but ``/health`` and ``/metrics``
        needs one in the ``X-API-Key`` header. The server refuses to start without any.
    max_body_bytes : int
        ``CLV_API_MAX_BODY_BYTES``: larger request bodies get 413 before they are read whole.
    max_batch : int
        ``CLV_API_MAX_BATCH``: customers per ``POST /predict/clv/batch``.
    poll_seconds : float
        ``CLV_API_POLL_SECONDS``: how often the champion alias, the latest scores and the active
        segmentation are checked for a change (picked up without a restart).
    cors_origins : list of str
        ``CLV_API_CORS_ORIGINS``: comma-separated origins allowed by CORS; empty (the default)
        leaves CORS off.
    page_size, max_page_size : int
        Default and largest page of ``GET /segments/{name}/customers``.
    alias : str
        ``CLV_API_ALIAS``: the registry alias served (default ``champion``).
    """

    model_config = SettingsConfigDict(env_prefix="CLV_API_", extra="ignore")

    keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    max_body_bytes: int = Field(default=64 * 1024, ge=256, le=64 * 1024 * 1024)
    max_batch: int = Field(default=1000, ge=1, le=100_000)
    poll_seconds: float = Field(default=30.0, gt=0, le=86_400)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    page_size: int = Field(default=100, ge=1)
    max_page_size: int = Field(default=1000, ge=1)
    alias: str = "champion"

    @field_validator("keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [SecretStr(k.strip()) for k in value.split(",") if k.strip()]
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value
