"""BentoML service, auth, daily scoring and web pages (built in later issues)."""
