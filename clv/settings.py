"""Settings read once from the environment (prefix ``CLV_``).

Use :func:`get_settings`; it is cached, so the environment is read on first use, never at import.
Tests that change the environment call ``get_settings.cache_clear()``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Platform settings.

    Attributes
    ----------
    home : Path
        The data home (``CLV_HOME``): generated data, ingested files, local stores and reports.
    s3_endpoint_url : str or None
        Endpoint for ``s3://`` URIs (``CLV_S3_ENDPOINT_URL``), for MinIO and other S3-compatible
        stores. ``None`` uses AWS.
    s3_region : str
        Region passed to boto3 (``CLV_S3_REGION``).
    max_reported_errors : int
        How many validation problems are listed before the report is cut short.
    future_tolerance_days : float
        Dates later than now plus this many days are refused by the validation gate
        (``CLV_FUTURE_TOLERANCE_DAYS``; time zones and clock skew fit in a day).
    optuna_storage : str or None
        SQLAlchemy URL of the Optuna study storage (``CLV_OPTUNA_STORAGE``), e.g.
        ``postgresql+psycopg://user@host/db``. ``None``: SQLite under ``home/optuna``.
    database_url : str or None
        SQLAlchemy URL of the platform's own database (``CLV_DATABASE_URL``): segment versions,
        assignment history, approvals and scores, e.g. ``postgresql+psycopg://user@host/clv``.
        ``None``: SQLite at ``home/clv.db``.
    smtp_host : str or None
        SMTP server for the campaigns' email channel (``CLV_SMTP_HOST``). ``None``: no email
        channel (:func:`clv.campaigns.channels.providers_from_settings` says so when asked).
    smtp_port : int
        Its port (``CLV_SMTP_PORT``): 25, or 587 for submission with STARTTLS.
    smtp_user : str or None
        Login for SMTP AUTH (``CLV_SMTP_USER``); ``None``: no AUTH.
    smtp_password : SecretStr or None
        Password for SMTP AUTH (``CLV_SMTP_PASSWORD``); never shown in reprs or logs.
    smtp_starttls : bool
        Upgrade the SMTP connection with STARTTLS before AUTH and sending
        (``CLV_SMTP_STARTTLS``); the server certificate is verified.
    smtp_from : str
        The From address of campaign emails (``CLV_SMTP_FROM``), e.g. ``Shop <news@shop.example>``.
    smtp_connections : int
        SMTP sessions a batch of emails is spread over in parallel (``CLV_SMTP_CONNECTIONS``,
        1–64, default 4); keep it under the server's limit of connections per client.
    sms_webhook_url : str or None
        HTTP(S) endpoint that sends SMS (``CLV_SMS_WEBHOOK_URL``); ``None``: no SMS channel.
    inapp_webhook_url : str or None
        HTTP(S) endpoint that delivers in-app messages (``CLV_INAPP_WEBHOOK_URL``);
        ``None``: no in-app channel.
    dask_address : str or None
        Scheduler of a Dask cluster to run features, training, scoring and segmentation on
        (``CLV_DASK_ADDRESS``, e.g. ``tcp://dask-scheduler:8786``); ``None``: one machine, no
        Dask. ``--dask-address`` on the CLI overrides it.
    """

    model_config = SettingsConfigDict(env_prefix="CLV_", extra="ignore")

    home: Path = Field(default=Path(".clv"))
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    max_reported_errors: int = Field(default=50, ge=1, le=100_000)
    optuna_storage: str | None = None
    future_tolerance_days: float = Field(default=1.0, ge=0.0)
    database_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65_535)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_from: str = "clv@localhost"
    smtp_connections: int = Field(default=4, ge=1, le=64)
    sms_webhook_url: str | None = None
    inapp_webhook_url: str | None = None
    dask_address: str | None = None

    @property
    def warehouse(self) -> Path:
        """Folder where ``clv ingest`` keeps validated, content-addressed copies of inputs."""
        return self.home / "warehouse"

    @property
    def database(self) -> str:
        """The platform database's SQLAlchemy URL: ``database_url``, else SQLite under ``home``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'clv.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the settings, read from the environment on first call and cached afterwards."""
    return Settings()
