"""Tracking-log ingestion: files and streams of lines into the engine, exactly once."""
