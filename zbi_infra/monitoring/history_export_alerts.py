"""Alerts on the history export CronJobs (zbi_infra/node/history_export_job.py), from kube-state-metrics' job and
cronjob series: a failed run, and no successful run for longer than the instance's own schedule allows."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from zbi_infra.config.history_export import CRON_FIELDS
from zbi_infra.config.instance import InstanceConfig
from zbi_infra.monitoring.alerts import Alert
from zbi_infra.node.context import namespace_of
from zbi_infra.node.history_export_job import EXPORT_COMPONENT

# Two months of minutes: every schedule cron can write repeats within them (a yearly one would not; zBI's schedules
# are validated cron, and a gap longer than this is reported as this).
HORIZON = timedelta(days=62)


def _values(text: str, low: int, high: int) -> set[int]:
    found: set[int] = set()
    for part in text.split(","):
        span, _, step = part.partition("/")
        first, last = (low, high) if span == "*" else (int(span.split("-")[0]), int(span.split("-")[-1]))
        if step and span != "*" and "-" not in span:
            last = high  # `5/15`: from 5 to the end, every 15
        found.update(range(first, last + 1, int(step or 1)))
    return found


def longest_gap(schedule: str, start: datetime = datetime(2026, 1, 1)) -> timedelta:
    """The longest time between two consecutive runs of a five-field cron `schedule` (Vixie cron's rule: when both
    day fields are restricted, either one matching is enough; day-of-week 7 is Sunday, as 0)."""
    texts = schedule.split()
    minutes, hours, days, months, weekdays = (
        _values(t, low, high) for t, (_, low, high) in zip(texts, CRON_FIELDS, strict=True)
    )
    weekdays = {d % 7 for d in weekdays}
    both_restricted = texts[2] != "*" and texts[4] != "*"
    runs = []
    moment = start
    while moment < start + HORIZON:
        if moment.minute in minutes and moment.hour in hours and moment.month in months:
            day_ok, weekday_ok = moment.day in days, (moment.isoweekday() % 7) in weekdays
            if (day_ok or weekday_ok) if both_restricted else (day_ok and weekday_ok):
                runs.append(moment)
        moment += timedelta(minutes=1)
    if len(runs) < 2:
        return HORIZON
    return max(later - earlier for earlier, later in itertools.pairwise(runs))


def history_export_alerts(instances: dict[str, InstanceConfig]) -> list[Alert]:
    exporting = {
        name: instance.history.export
        for name, instance in sorted(instances.items())
        if instance.history is not None and instance.history.export.enabled
    }
    alerts = []
    for name, export in exporting.items():
        namespace = namespace_of(name)
        # Two missed runs and the longest a run may take: one failure alone is HistoryExportFailed's business.
        allowed = 2 * longest_gap(export.schedule) + timedelta(minutes=export.run_deadline_minutes)
        hours = allowed.total_seconds() / 3600
        alerts.append(
            Alert(
                "HistoryExportStale",
                f'time() - kube_cronjob_status_last_successful_time{{namespace="{namespace}", '
                f'cronjob="{EXPORT_COMPONENT}"}} > {int(allowed.total_seconds())}',
                "15m",
                "warning",
                f"No history export run of {name} has succeeded in {hours:g} hours (two runs of its schedule "
                f"'{export.schedule}' and a run's deadline): the Parquet tables in S3 fall behind the chain.",
            )
        )
    if exporting:
        namespaces = "|".join(namespace_of(name) for name in exporting)
        alerts.append(
            Alert(
                "HistoryExportFailed",
                f'kube_job_status_failed{{namespace=~"{namespaces}", job_name=~"{EXPORT_COMPONENT}-.+"}} > 0',
                "0m",
                "warning",
                "History export run {{ $labels.job_name }} in {{ $labels.namespace }} failed: its log says why "
                "(the node's RPC, S3, or a chain that does not match what was exported); the next run resumes.",
            )
        )
    return alerts
