"""Readers for source extracts, their data contracts, quarantine and the linked warehouse."""
