"""Tutor plugin `cairnlake`: Cairn's datalake, collector and dashboards in an Open edX platform."""
