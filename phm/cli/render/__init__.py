"""Every table and summary the commands print, in one place: `tables` (the table itself, folded to a terminal
or whole on each line elsewhere) and one module per kind of output (`data_reports`, `model_runs`, `governance`,
`ledgers`, `forecasts`, `people`)."""
