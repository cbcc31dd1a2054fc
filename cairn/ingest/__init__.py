"""Tracking-log ingestion: files and streams of lines into the engine, exactly once.

One tracking-log line goes, in data-flow order, through:

=====================  ==========================================================
``files``              what may be loaded, opening (plain or gzip), fingerprints, JSON documents
``identity``           which stream a file is: first line, then the 4 KiB before the position loaded
``chunks``             chunks of whole lines (long lines cut), replay ranges, prefetch
``encoding``           chunks as they are (``_ingest_chunks``) or TabSeparated rows (``_ingest``)
``checkpoints``        the exactly-once protocol: intent rows, tokens, commits
``batching``           how many bytes go into one insert (real time, backfill)
``reserve``            free space kept on the data directory's disk (pause, refuse)
``loader``             ``Loader``: one file from its checkpoint to its end (`cairn backfill`)
``collector``          ``Collector``: following files, rotation, outages (`cairn collect`)
``stdin``              standard input as a collector source
``collector_state``    ``collector.json``: what a running collector is doing
``status``             the collector section of `cairn status`
=====================  ==========================================================

In ClickHouse, the materialized views behind ``_ingest`` classify and parse each
line, once (``cairn/schema/migrations/0060_ingest_parse_once.sql``).
"""
