"""The synthetic ICS: the embedded default data set, with known ground truth."""
