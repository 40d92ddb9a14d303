"""Mapping between vendor records and canonical records: pure functions driven by field mappings."""
