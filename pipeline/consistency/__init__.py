"""Data-consistency checks run during a release: each counts the records that break a
rule the schema does not enforce, or says it could not tell (inconclusive, never a pass)."""
