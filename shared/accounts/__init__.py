"""Users, API keys and tiers."""
