"""What runs: the pipeline, the executor and the action gate, later steps, incidents,
recovery after a restart, verification, GitOps follow-ups, playbook modes."""
