"""Where the scoring service finds its model, profiles, store and key: one typed object.

``overblik serve`` builds :class:`ServingSettings` from its options and hands it to the
``bentoml serve`` workers as environment variables (:meth:`ServingSettings.to_env`); a
worker reads them back with :meth:`ServingSettings.from_env`. The pseudonymisation key itself
never goes into these variables: only the path of a key file, the demo-key switch, or the
existing ``OVERBLIK_PSEUDONYM_KEY`` that the operator set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from overblik.experiments._approval import CHAMPION
from overblik.experiments._tracking import data_dir, default_tracking_uri, registered_model_name
from overblik.features._errors import InputError

__all__ = ["ENV_PREFIX", "ServingSettings", "default_profile_store", "default_store_url",
           "model_name_of"]

ENV_PREFIX = "OVERBLIK_SERVE_"


_ENV_NAMES = {"tracking_uri": "TRACKING_URI", "model_name": "MODEL", "alias": "ALIAS",
              "profile_store": "PROFILES", "store_url": "STORE", "key_file": "KEY_FILE",
              "demo_key": "DEMO_KEY", "band_thresholds": "BANDS", "top_reasons": "TOP_REASONS",
              "key_cache_seconds": "KEY_CACHE_SECONDS", "max_body_bytes": "MAX_BODY_BYTES",
              "max_bulk_body_bytes": "MAX_BULK_BODY_BYTES",
              "approval_check_seconds": "APPROVAL_CHECK_SECONDS"}


def default_store_url() -> str:
    """``$OVERBLIK_SERVE_STORE`` or a SQLite file in the data folder."""
    return os.environ.get(f"{ENV_PREFIX}STORE") or f"sqlite:///{data_dir() / 'serving.db'}"


def model_name_of(name: str) -> str:
    """A registered model name from a name or an experiment name (``child_placement``)."""
    return name if name.startswith("overblik-") else registered_model_name(name)


def default_profile_store(model: str) -> Path:
    """``<data>/profiles/<registered model name>.parquet``."""
    return data_dir() / "profiles" / f"{model_name_of(model)}.parquet"


class ServingSettings(BaseModel):
    """Everything a scoring-service worker needs to start.

    Attributes
    ----------
    tracking_uri
        MLflow tracking and registry URI.
    model_name, alias
        The registered model and the alias served (``champion``: approved versions only).
    profile_store
        The Parquet (or CSV) file written by ``overblik profiles``.
    store_url
        Audit log and API keys: ``sqlite:///...`` or ``postgresql://...``.
    key_file, demo_key
        The pseudonymisation key: a file, else ``$OVERBLIK_PSEUDONYM_KEY``, else the demo
        key when ``demo_key`` (synthetic data only).
    band_thresholds
        Probabilities where the risk band changes: below the first ``low``, below the
        second ``medium``, else ``high``.
    top_reasons
        Reasons returned when the request does not say.
    key_cache_seconds
        How long a checked API key is trusted before asking the store again.
    max_body_bytes
        Largest request body accepted (413 above).
    max_bulk_body_bytes
        Largest body of a bulk endpoint (``/allocate``: up to 20,000 citizens with every
        feature are ~120 MB of JSON; one allocation cannot be split).
    approval_check_seconds
        How often the ethics board's decision on the served version is read again (0.1 s to
        an hour; it cannot be switched off); while it may not serve, no scores are answered.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    tracking_uri: str = Field(default_factory=default_tracking_uri)
    model_name: str = "overblik-child-placement"
    alias: str = CHAMPION
    profile_store: Path | None = None
    store_url: str = Field(default_factory=default_store_url)
    key_file: Path | None = None
    demo_key: bool = False
    band_thresholds: tuple[float, float] = (0.05, 0.20)
    top_reasons: int = Field(default=5, ge=1, le=20)
    key_cache_seconds: float = Field(default=5.0, ge=0)
    max_body_bytes: int = Field(default=2_000_000, ge=1_000)
    max_bulk_body_bytes: int = Field(default=256_000_000, ge=1_000)
    approval_check_seconds: float = Field(default=10.0, ge=0.1, le=3600)

    @field_validator("model_name")
    @classmethod
    def _registered(cls, v: str) -> str:
        return model_name_of(v)

    @field_validator("band_thresholds")
    @classmethod
    def _bands(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] < v[1] < 1:
            raise ValueError("give two increasing probabilities between 0 and 1, e.g. 0.05,0.2")
        return v

    @property
    def profile_path(self) -> Path:
        """The profile store (the default path when none is set)."""
        return self.profile_store or default_profile_store(self.model_name)

    def to_env(self) -> dict[str, str]:
        """The settings as ``OVERBLIK_SERVE_*`` environment variables."""
        out: dict[str, str] = {}
        for attr, name in _ENV_NAMES.items():
            value = getattr(self, attr)
            if value is None:
                continue
            if isinstance(value, tuple):
                value = ",".join(str(v) for v in value)
            elif isinstance(value, bool):
                value = "1" if value else "0"
            out[ENV_PREFIX + name] = str(value)
        return out

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServingSettings:
        """Settings from ``OVERBLIK_SERVE_*`` variables (defaults for the rest).

        Raises
        ------
        InputError
            Naming the variable that holds a bad value.
        """
        env = os.environ if environ is None else environ
        raw: dict[str, object] = {}
        for attr, name in _ENV_NAMES.items():
            value = env.get(ENV_PREFIX + name)
            if value is None or value == "":
                continue
            if attr == "band_thresholds":
                raw[attr] = tuple(part.strip() for part in value.split(","))
            elif attr == "demo_key":
                raw[attr] = value.lower() in ("1", "true", "yes")
            else:
                raw[attr] = value
        if "tracking_uri" not in raw and env.get("MLFLOW_TRACKING_URI"):
            raw["tracking_uri"] = env["MLFLOW_TRACKING_URI"]
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            attr = str(err["loc"][0]) if err["loc"] else ""
            var = ENV_PREFIX + _ENV_NAMES.get(attr, attr.upper())
            raise InputError(f"{var}: {err['msg']}") from None
