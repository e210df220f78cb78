"""Daily demand forecasters with one interface, and intervals calibrated from back-test residuals."""
