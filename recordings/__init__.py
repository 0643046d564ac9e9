"""Encrypted, tamper-evident session records: age files, keys, event log."""
