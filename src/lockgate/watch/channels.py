"""Where alert notices go: `webhook` (signed like delivery webhooks, optionally with a
Slack-compatible body), `email` over SMTP, and `log`.

Channels are declared under `alert_channels:` in `lockgate.yaml`; secrets are named by their
environment variables (`secret_env`, `password_env`), never written in the file, and never
reach a log line, an error or a notice. A notice carries counts and rates, never an input.

    alert_channels:
      ops:   {type: webhook, url: "https://hooks.example.com/lockgate", secret_env: ALERT_HOOK_SECRET}
      chat:  {type: webhook, url: "https://hooks.slack.com/services/...", secret_env: SLACK_SIGNING, format: slack}
      oncall: {type: email, host: smtp.example.com, port: 587, starttls: true,
               from: lockgate@example.com, to: [oncall@example.com],
               username: lockgate, password_env: SMTP_PASSWORD}
"""  # noqa: E501

from __future__ import annotations

import asyncio
import logging
import smtplib
import time
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lockgate.decide.decision import canonical_json
from lockgate.decide.key_paths import key_path
from lockgate.delivery.sinks.signature import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)
from lockgate.errors import ConfigError, LockgateError
from lockgate.watch.alerts import Channel, Notice

log = logging.getLogger("lockgate.alerts")


class ChannelFailed(LockgateError):
    """A notice could not be sent; the message names the channel and the cause, no secret."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class WebhookChannelSpec(_Strict):
    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")
    secret_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """The environment variable holding the signing secret (as for delivery webhooks)."""
    format: Literal["lockgate", "slack"] = "lockgate"
    """`lockgate`: the notice as JSON; `slack`: `{"text": ...}` for a Slack incoming webhook."""
    timeout_s: float = Field(default=10.0, gt=0, le=120)


class EmailChannelSpec(_Strict):
    type: Literal["email"]
    host: str = Field(min_length=1)
    port: int = Field(default=25, ge=1, le=65535)
    from_: str = Field(alias="from", pattern=r"^[^@\s]+@[^@\s]+$")
    to: tuple[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")], ...] = Field(min_length=1)
    username: str | None = None
    password_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """The environment variable holding the SMTP password."""
    starttls: bool = False
    ssl: bool = False
    timeout_s: float = Field(default=10.0, gt=0, le=120)


class LogChannelSpec(_Strict):
    type: Literal["log"]


ChannelSpec = Annotated[
    WebhookChannelSpec | EmailChannelSpec | LogChannelSpec, Field(discriminator="type")
]


class _Channels(BaseModel):
    channels: Mapping[str, ChannelSpec]


# ---- the channels


class LogChannel:
    async def send(self, notice: Notice) -> None:
        level = logging.ERROR if notice.severity == "critical" else logging.WARNING
        if notice.kind == "resolved":
            level = logging.INFO
        log.log(level, f"alert.{notice.kind}", extra=notice.payload())


class WebhookChannel:
    """POST the notice, signed with HMAC-SHA256 like delivery webhooks (`X-Lockgate-Signature`
    over `TIMESTAMP.BODY`; check it with `lockgate.verify_signature`)."""

    def __init__(self, name: str, spec: WebhookChannelSpec, environ: Mapping[str, str]) -> None:
        self.name = name
        self.spec = spec
        self._environ = environ

    def body(self, notice: Notice) -> bytes:
        if self.spec.format == "slack":
            return canonical_json({"text": notice.title()}).encode()
        return canonical_json(notice.payload()).encode()

    async def send(self, notice: Notice) -> None:
        import aiohttp

        secret = self._environ.get(self.spec.secret_env, "")
        if not secret:
            raise ChannelFailed(
                f"alert channel {self.name}: the environment variable {self.spec.secret_env} "
                "(its signing secret) is not set"
            )
        body = self.body(notice)
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: notice.key,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(secret, timestamp, body),
        }
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    self.spec.url,
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=self.spec.timeout_s),
                    allow_redirects=False,
                ) as response,
            ):
                status = response.status
                await response.read()
        except TimeoutError:
            raise ChannelFailed(
                f"alert channel {self.name}: no answer within {self.spec.timeout_s:g}s"
            ) from None
        except aiohttp.ClientError as exc:
            raise ChannelFailed(
                f"alert channel {self.name}: connection failed ({type(exc).__name__})"
            ) from None
        if not 200 <= status < 300:
            raise ChannelFailed(f"alert channel {self.name}: HTTP {status}")


class EmailChannel:
    """Send the notice as a plain-text e-mail over SMTP (STARTTLS or TLS where set)."""

    def __init__(self, name: str, spec: EmailChannelSpec, environ: Mapping[str, str]) -> None:
        self.name = name
        self.spec = spec
        self._environ = environ

    def message(self, notice: Notice) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = f"Lockgate alert {notice.title()}"
        message["From"] = self.spec.from_
        message["To"] = ", ".join(self.spec.to)
        message["Message-ID"] = f"<{notice.key.replace(':', '.')}@lockgate>"
        lines = [notice.title(), ""]
        lines += [f"{key}: {value}" for key, value in notice.payload().items() if key != "title"]
        message.set_content("\n".join(lines) + "\n")
        return message

    def _send(self, message: EmailMessage) -> None:
        spec = self.spec
        password = self._environ.get(spec.password_env, "") if spec.password_env else ""
        if spec.password_env and not password:
            raise ChannelFailed(
                f"alert channel {self.name}: the environment variable {spec.password_env} "
                "(its SMTP password) is not set"
            )
        kind = smtplib.SMTP_SSL if spec.ssl else smtplib.SMTP
        try:
            with kind(spec.host, spec.port, timeout=spec.timeout_s) as smtp:
                if spec.starttls:
                    smtp.starttls()
                if spec.username:
                    smtp.login(spec.username, password)
                smtp.send_message(message)
        except smtplib.SMTPResponseException as exc:
            # The server's code only: its text may echo what was sent.
            raise ChannelFailed(
                f"alert channel {self.name}: the SMTP server refused ({exc.smtp_code})"
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise ChannelFailed(
                f"alert channel {self.name}: SMTP to {spec.host}:{spec.port} failed "
                f"({type(exc).__name__})"
            ) from None

    async def send(self, notice: Notice) -> None:
        await asyncio.to_thread(self._send, self.message(notice))


def build_channels(config: Any, environ: Mapping[str, str]) -> dict[str, Channel]:
    """The channels declared under `alert_channels:` in `lockgate.yaml`, and `log`; a mistake
    is one line naming the key as written."""
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise ConfigError(
            "lockgate.yaml: alert_channels: expected a mapping of channel names to channels",
            hint="e.g. alert_channels: {ops: {type: webhook, url: ..., secret_env: HOOK_SECRET}}",
        )
    try:
        parsed = _Channels.model_validate({"channels": config}).channels
    except ValidationError as exc:
        error = exc.errors()[0]
        path, _ = key_path(_Channels, error["loc"])
        where = path.removeprefix("channels")
        raise ConfigError(
            f"lockgate.yaml: alert_channels{where}: {error['msg']}",
            hint="each channel has a type (webhook, email or log); see docs/operations.md#alerts",
        ) from None
    channels: dict[str, Channel] = {"log": LogChannel()}
    for name, spec in parsed.items():
        if isinstance(spec, WebhookChannelSpec):
            channels[name] = WebhookChannel(name, spec, environ)
        elif isinstance(spec, EmailChannelSpec):
            channels[name] = EmailChannel(name, spec, environ)
        else:
            channels[name] = LogChannel()
    return channels
