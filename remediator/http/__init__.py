"""The HTTP surface: the Alertmanager webhook, health, metrics (and the admin API)."""
