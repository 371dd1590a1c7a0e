"""Alerting: velocity spikes, watchlist hits and pipeline lag, one message per incident.

The rules are pure functions over DataFrames (:mod:`.rules`); :class:`AlertService` reads the
serving tables, records what fires in the ``alerts`` table (which also remembers the
cooldown across restarts), publishes it on ``alerts.topic`` and POSTs it to
``alerts.webhook_url`` when one is set. ``wikipulse alerts run`` runs it as a service::

    from wiki_lib import load_settings
    from wiki_lib.alerts import AlertService

    with AlertService(load_settings()) as service:
        for alert in service.evaluate():
            print(alert.message)
"""

from wiki_lib.alerts.notify import AlertPublisher, NotifyError, post_webhook, slack_payload
from wiki_lib.alerts.rules import (
    LAG,
    VELOCITY,
    WATCHLIST,
    Alert,
    Severity,
    clean_terms,
    due,
    pipeline_lag,
    velocity_spikes,
    watchlist_hits,
)
from wiki_lib.alerts.service import AlertService, AlertStats

__all__ = [
    "LAG",
    "VELOCITY",
    "WATCHLIST",
    "Alert",
    "AlertPublisher",
    "AlertService",
    "AlertStats",
    "NotifyError",
    "Severity",
    "clean_terms",
    "due",
    "pipeline_lag",
    "post_webhook",
    "slack_payload",
    "velocity_spikes",
    "watchlist_hits",
]
