"""Shared-contract module for the CommerceML exchange: 1C calls the hub, so only the static shape is
checked here; the protocol is tested in tests/sync/connectors/test_onec_commerceml.py."""

SYSTEM = "onec_commerceml"
CONTRACT = "CONTRACTS.md §2.2"
HTTP = False
