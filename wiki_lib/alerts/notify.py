"""Where a fired alert goes besides the alerts table: a Kafka topic and a chat webhook.

Both are notifications, not the record: the table is written first, and a broker or webhook
that fails is logged and counted by the caller, never allowed to stop the service (a Kafka
outage is exactly when the pipeline-lag alert must still reach the table and the dashboard).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import requests
from kafka import KafkaProducer
from kafka.errors import KafkaError

from wiki_lib.alerts.rules import Alert
from wiki_lib.config import Settings
from wiki_lib.errors import SinkError, TransientError
from wiki_lib.kafka_admin import TopicSpec, ensure_topics

__all__ = ["AlertPublisher", "NotifyError", "post_webhook", "slack_payload"]

log = logging.getLogger(__name__)

_ICONS = {"info": ":mag:", "warning": ":warning:", "critical": ":rotating_light:"}
_COLORS = {"info": "#439fe0", "warning": "#daa038", "critical": "#d00000"}


class NotifyError(SinkError, TransientError):
    """A notification (topic or webhook) could not be delivered; the next alert may be."""


def slack_payload(alert: Alert) -> dict[str, Any]:
    """The Slack incoming-webhook message of ``alert`` (``text`` plus a coloured attachment,
    which Mattermost and Rocket.Chat understand too)."""
    text = f"{_ICONS[alert.severity]} [{alert.severity}] {alert.message}"
    return {
        "text": text,
        "attachments": [
            {
                "color": _COLORS[alert.severity],
                "fallback": text,
                "fields": [
                    {"title": "rule", "value": alert.rule, "short": True},
                    {"title": "key", "value": alert.key, "short": True},
                    {
                        "title": "observed",
                        "value": f"{alert.observed_at:%Y-%m-%d %H:%M:%S} UTC",
                        "short": True,
                    },
                    {
                        "title": "fired",
                        "value": f"{alert.fired_at:%Y-%m-%d %H:%M:%S} UTC",
                        "short": True,
                    },
                ],
            }
        ],
    }


def post_webhook(url: str, alert: Alert, *, timeout_s: float) -> None:
    """POST ``alert`` as Slack JSON; anything but a 2xx answer is a :class:`NotifyError`.

    The error names the host only: a webhook URL's path is its secret token.
    """
    parts = urlsplit(url)
    where = f"the webhook at {parts.scheme}://{parts.netloc}"
    try:
        response = requests.post(url, json=slack_payload(alert), timeout=timeout_s)
    except requests.RequestException as exc:
        detail = str(exc).replace(url, "<webhook>")
        if parts.path not in ("", "/"):
            detail = detail.replace(parts.path, "/<token>")
        raise NotifyError(f"posting alert {alert.rule}/{alert.key} to {where}: {detail}") from exc
    if not 200 <= response.status_code < 300:
        raise NotifyError(
            f"{where} answered HTTP {response.status_code} to alert "
            f"{alert.rule}/{alert.key}: {response.text[:200]}"
        )


class AlertPublisher:
    """Publishes alerts as JSON on the alerts topic, keyed by ``rule|key``.

    The producer and the topic are created on first use and dropped after a failure, so a
    broker that comes back is picked up by the next publish.
    """

    def __init__(self, settings: Settings, *, timeout_s: float = 10.0) -> None:
        self.bootstrap = settings.kafka.bootstrap
        self.topic = settings.alerts.topic
        self.spec = TopicSpec(1, settings.kafka.replication_factor)
        self.timeout_s = timeout_s
        self._producer: KafkaProducer | None = None

    def _connect(self) -> KafkaProducer:
        if self._producer is None:
            ensure_topics(self.bootstrap, {self.topic: self.spec}, timeout_s=self.timeout_s)
            try:
                self._producer = KafkaProducer(
                    bootstrap_servers=self.bootstrap.split(","),
                    client_id="wikipulse-alerts",
                    acks="all",
                    request_timeout_ms=int(self.timeout_s * 1000),
                    max_block_ms=int(self.timeout_s * 1000),
                )
            except (KafkaError, OSError) as exc:
                raise NotifyError(f"cannot reach Kafka at {self.bootstrap}: {exc}") from exc
        return self._producer

    def publish(self, alerts: Sequence[Alert]) -> None:
        """Send ``alerts`` and wait until the broker acknowledged every one."""
        if not alerts:
            return
        try:
            producer = self._connect()
            futures = [
                producer.send(
                    self.topic,
                    key=f"{a.rule}|{a.key}".encode(),
                    value=json.dumps(a.to_json()).encode(),
                )
                for a in alerts
            ]
            producer.flush(timeout=self.timeout_s)
            for future in futures:
                future.get(timeout=self.timeout_s)
        except (KafkaError, SinkError) as exc:
            self.close()
            raise NotifyError(
                f"publishing {len(alerts)} alerts to {self.topic} on {self.bootstrap}: {exc}"
            ) from exc

    def close(self) -> None:
        """Flush and close the producer (a later publish opens a new one)."""
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=self.timeout_s)
            except KafkaError as exc:
                log.warning("closing the alerts producer: %s", exc)
