"""What is said: reports, escalations and their policy, the durable outbox and its
channels, Slack rendering, dead letters, a run's progress notes."""
