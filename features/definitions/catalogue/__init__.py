"""The declared predictors, one module per family: who the person is (`demography`), what they live with
(`conditions`), their use of services (`utilisation`, with ACSC admissions), COPD and asthma exacerbations
(`respiratory`), the population segment (`segments`) and home readings (`home_monitoring`). Each model
specification (`models/specs/`) picks the families and features of its feature set.

Every definition here is data; `phm features list` prints them for clinicians.
"""
