"""What operators decide: the operator API, approvals (admin API and Slack), runs by
hand, the storm watch."""
