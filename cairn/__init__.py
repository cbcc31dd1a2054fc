"""Cairn: a real-time SQL datalake for Open edX on ClickHouse."""

__version__ = "0.1.0"
