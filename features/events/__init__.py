"""Near real time events: HL7 v2 ADT and FHIR R4 Encounter messages parsed (`hl7v2`, `fhir`), checked against the
extract contracts (`checks`), pseudonymised on arrival, kept in an append-only store beside the warehouse
(`store`) and folded into encounter rows (`fold`)."""
