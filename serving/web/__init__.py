"""Web pages for the four kinds of user, served by the same BentoML service at /ui."""
