"""MES outputs (HTTP, MQTT, file drop, KLARF, OPC UA; chosen by ``type``) and outbox housekeeping."""

from __future__ import annotations

import re
import string
from typing import Annotated, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from inspector.config.schema.base import (
    MQTT_TOPIC_FIELDS,
    ConfigModel,
    EnvName,
    FieldIssues,
    Fraction,
    Loc,
    PathText,
    Slug,
    raise_if,
)


class BackoffConfig(ConfigModel):
    """Retry delays of one MES output: ``initial_s * multiplier**(n-1)`` capped at ``max_s``, with jitter."""

    initial_s: float = Field(0.5, gt=0, le=3600, description="Delay after the first failure, in seconds.")
    max_s: float = Field(60.0, gt=0, le=86400, description="Longest delay between retries, in seconds.")
    multiplier: float = Field(2.0, ge=1.0, le=10.0, description="Growth of the delay per consecutive failure "
                              "(1 = constant delay).")
    jitter: Fraction = Field(
        0.5, description="Random share of each delay (0 = fixed, 0.5 = half fixed half random, 1 = fully random), "
        "so that many stations do not retry in step after a shared outage."
    )

    @model_validator(mode="after")
    def _order(self) -> "BackoffConfig":
        if self.max_s < self.initial_s:
            raise FieldIssues([(("max_s",), f"must be >= initial_s ({self.initial_s:g}), got {self.max_s:g}")])
        return self


class _OutboxOutput(ConfigModel):
    """What every outbox-fed output shares: how its forwarder retries and batches."""

    backoff: BackoffConfig = Field(default_factory=BackoffConfig, description="Retry back-off after failures.")
    batch_size: int = Field(
        200, ge=1, le=10000, description="Messages handed to the transport per delivery round "
        "(and marked delivered per transaction)."
    )


class _TlsFields(ConfigModel):
    """Server verification and the optional client certificate (mutual TLS)."""

    verify_tls: bool = Field(
        True, description="Verify the server's TLS certificate and host name; false is insecure (test benches only) "
        "and is logged as such."
    )
    ca_file: Optional[PathText] = Field(
        None, description="CA bundle (PEM) to verify the server with, e.g. a private CA; null = the system CAs."
    )
    cert_file: Optional[PathText] = Field(
        None, description="Client certificate (PEM) for servers that require one (mutual TLS); null = none."
    )
    key_file: Optional[PathText] = Field(
        None, description="Private key (PEM) of cert_file; null = the key is inside cert_file."
    )

    @model_validator(mode="after")
    def _tls_files(self) -> "_TlsFields":
        issues: list[tuple[Loc, str]] = []
        if self.ca_file is not None and not self.verify_tls:
            issues.append((("ca_file",), "a CA file is given but verify_tls is false; remove one of them "
                           "(a CA file is only used to verify the server)"))
        if self.key_file is not None and self.cert_file is None:
            issues.append((("key_file",), "a key file needs its certificate: give cert_file too"))
        raise_if(issues)
        return self


class HttpOutput(_OutboxOutput, _TlsFields):
    type: Literal["http"] = Field(..., description="POST one JSON result per unit to an HTTP endpoint.")
    id: Slug = Field(..., description="Output id, unique among MES outputs (names its outbox).")
    url: str = Field(..., description="Endpoint URL, starting with http:// or https://.")
    token_env: Optional[EnvName] = Field(
        None, description="Name of the environment variable holding the bearer token (never the token itself)."
    )
    timeout_s: float = Field(5.0, gt=0, le=600, description="Timeout of one request (connect, send, answer), "
                             "in seconds.")

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError(f"expected a URL starting with http:// or https://, got {v!r}")
        return v

    @model_validator(mode="after")
    def _tls_needs_https(self) -> "HttpOutput":
        if not self.url.startswith("https://"):
            given = [f for f in ("ca_file", "cert_file") if getattr(self, f) is not None]
            if given:
                raise FieldIssues([((given[0],), f"only used with an https:// url, got {self.url!r}")])
        return self


class MqttOutput(_OutboxOutput, _TlsFields):
    type: Literal["mqtt"] = Field(..., description="Publish one JSON result per unit to an MQTT broker.")
    id: Slug = Field(..., description="Output id, unique among MES outputs (names its outbox).")
    host: str = Field(..., min_length=1, description="Broker host name or IP address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port.")
    topic_template: str = Field(
        "inspector/{station}/{lot}",
        min_length=1,
        description="Topic with placeholders among: " + ", ".join("{" + f + "}" for f in MQTT_TOPIC_FIELDS) + ".",
    )
    qos: Literal[0, 1, 2] = Field(
        1, description="MQTT quality of service (1 = at least once; results carry ids to de-duplicate)."
    )
    tls: bool = Field(False, description="Connect with TLS (usually port 8883); see verify_tls, ca_file, cert_file.")
    username_env: Optional[EnvName] = Field(None, description="Name of the environment variable holding the user name.")
    password_env: Optional[EnvName] = Field(None, description="Name of the environment variable holding the password.")
    timeout_s: float = Field(5.0, gt=0, le=600, description="Longest wait for the broker's CONNACK and for the "
                             "PUBACKs of one window of messages, in seconds.")
    window: int = Field(100, ge=1, le=65535, description="Messages in flight (published, PUBACK pending) at once.")

    @model_validator(mode="after")
    def _tls_fields_need_tls(self) -> "MqttOutput":
        if not self.tls:
            given = [f for f in ("ca_file", "cert_file") if getattr(self, f) is not None]
            if not self.verify_tls:
                given.append("verify_tls")
            if given:
                raise FieldIssues([((given[0],), "only used with tls: true (the connection is plain MQTT)")])
        return self

    @field_validator("topic_template")
    @classmethod
    def _placeholders(cls, v: str) -> str:
        try:
            names = [f for _, f, _, _ in string.Formatter().parse(v) if f is not None]
        except ValueError as exc:
            raise ValueError(f"expected a topic with {{placeholders}}, got {v!r} ({exc})") from None
        for name in names:
            if name not in MQTT_TOPIC_FIELDS:
                raise ValueError(f"unknown placeholder {{{name}}}; allowed: {', '.join(MQTT_TOPIC_FIELDS)}")
        return v


class FileDropOutput(_OutboxOutput):
    type: Literal["filedrop"] = Field(..., description="Write one JSON file per unit into a folder (atomic rename).")
    id: Slug = Field(..., description="Output id, unique among MES outputs.")
    folder: PathText = Field(..., description="Target folder; relative paths resolve against the data folder.")


class KlarfOutput(_OutboxOutput):
    type: Literal["klarf"] = Field(..., description="Write one KLARF defect file per wafer.")
    id: Slug = Field(..., description="Output id, unique among MES outputs.")
    folder: PathText = Field(..., description="Target folder; relative paths resolve against the data folder.")


class OpcUaOutput(ConfigModel):
    type: Literal["opcua"] = Field(..., description="Expose the latest results on an OPC UA server.")
    id: Slug = Field(..., description="Output id, unique among MES outputs.")
    endpoint: str = Field(
        "opc.tcp://127.0.0.1:4840/inspector",
        pattern=r"^opc\.tcp://",
        description="Server endpoint 'opc.tcp://host:port/path'.",
    )


MesOutput = Annotated[
    Union[HttpOutput, MqttOutput, FileDropOutput, KlarfOutput, OpcUaOutput], Field(discriminator="type")
]


class MesOutboxConfig(ConfigModel):
    """Housekeeping of the outbox shared by every MES output."""

    retention_days: float = Field(
        7.0, gt=0, le=3650, description="Delivered messages older than this many days are deleted (the decisions "
        "stay in the store; undelivered messages are never deleted)."
    )
    prune_interval_min: float = Field(
        10.0, gt=0, le=1440, description="How often, in minutes, each forwarder looks for delivered messages to delete."
    )
    prune_batch: int = Field(
        500, ge=1, le=100000, description="Rows deleted per transaction when pruning (small: the station's "
        "writer never waits long)."
    )
