"""Insert-size policy (cairn/ingest/batching.py)."""

from __future__ import annotations

import pytest

from cairn.config import load_config
from cairn.ingest.batching import (BACKFILL_BATCH_BYTES, BACKFILL_BATCH_BYTES_SERVER, REALTIME_BATCH_BYTES,
                                   backfill_batch_bytes)


@pytest.fixture
def default_config(tmp_path):
    empty = tmp_path / "cairn.toml"
    empty.write_text("")  # an explicit empty file: a cairn.toml in the working directory must not count
    return load_config(empty, environ={})


def test_realtime_default_is_the_configured_default(default_config):
    assert default_config["collector.batch_bytes"] == REALTIME_BATCH_BYTES


def test_backfill_raises_the_default_batch_in_process_and_not_through_a_server(default_config):
    assert backfill_batch_bytes(default_config, in_process=True) == BACKFILL_BATCH_BYTES == 32 * 1024 * 1024
    assert backfill_batch_bytes(default_config, in_process=False) == BACKFILL_BATCH_BYTES_SERVER == 4 * 1024 * 1024


@pytest.mark.parametrize("in_process", [True, False])
def test_a_batch_size_the_user_set_is_kept(default_config, in_process):
    small = default_config.with_overrides({"collector.batch_bytes": 65536})
    assert backfill_batch_bytes(small, in_process=in_process) == 65536
    big = default_config.with_overrides({"collector.batch_bytes": 64 * 1024 * 1024}, origin="in cairn.toml")
    assert backfill_batch_bytes(big, in_process=in_process) == 64 * 1024 * 1024
