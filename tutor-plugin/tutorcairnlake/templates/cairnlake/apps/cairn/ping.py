"""Health check of `cairn serve`: /ping at the address it published in serve.json (exit 1 if not OK)."""

import json
import os
import sys
import urllib.request

try:
    with open(os.path.join(os.environ.get("CAIRN_DATA_DIR", "/data"), "serve.json"), encoding="utf-8") as handle:
        served = json.load(handle)
    with urllib.request.urlopen(f"http://{served['host']}:{served['port']}/ping", timeout=5) as answer:
        sys.exit(0 if answer.read().strip() == b"Ok." else 1)
except (OSError, ValueError, KeyError) as exc:
    sys.exit(f"cairn serve is not answering: {exc}")
