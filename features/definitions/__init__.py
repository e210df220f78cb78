"""Feature definitions declared as data (the query model) and the catalogue of feature sets."""
