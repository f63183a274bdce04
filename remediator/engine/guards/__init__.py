"""Guards checked immediately before every action (kill switches, rate limits, blast radius...)."""
