"""Programme evaluation from routine data: did enrolment reduce emergency use? Naive before-after (exposing
regression to the mean), a matched comparison with its balance table, difference-in-differences on the matched
cohorts with bootstrap intervals, and the effect by ethnicity and deprivation."""
