"""Network clients: the only modules that talk to Kubernetes, Prometheus, PostgreSQL, Slack and
PagerDuty."""
