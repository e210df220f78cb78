"""Fairness audit by ethnicity and deprivation, the bias report, and the clinical safety sign-off."""
