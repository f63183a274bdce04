"""What arrives: the journal's intake, digesting into episodes (the plan), dispatch."""
