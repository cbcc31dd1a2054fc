"""Where the project and the read-only Open edX reference data are."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHARED = PROJECT_ROOT.parent / "shared" / "openedx"
EVENTS = SHARED / "events"
BENCH = PROJECT_ROOT / "bench"
