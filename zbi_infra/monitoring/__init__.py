"""Monitoring of zBI instances: alert rules (and, to come, the monitoring stack, monitors and dashboards)."""
