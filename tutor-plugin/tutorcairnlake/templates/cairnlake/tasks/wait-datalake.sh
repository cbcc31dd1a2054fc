# Wait for the datalake. Embedded engine: `cairn serve` must own the data directory and
# answer /ping at the address it published in serve.json; never open the directory here.
{% if CAIRNLAKE_ENGINE == "embedded" -%}
cairnlake_wait='
import json, os, sys, urllib.request
try:
    info = json.load(open(os.path.join(os.environ["CAIRN_DATA_DIR"], "serve.json")))
    urllib.request.urlopen("http://%s:%s/ping" % (info["host"], info["port"]), timeout=5).read()
except Exception as exc:
    sys.exit(str(exc))
'
{%- else -%}
cairnlake_wait='
import subprocess, sys
sys.exit(subprocess.run(["cairn", "client", "-q", "SELECT 1"], capture_output=True).returncode)
'
{%- endif %}
cairnlake_attempt=0
until python -c "$cairnlake_wait" 2>/dev/null
do
    cairnlake_attempt=$((cairnlake_attempt + 1))
    if [ "$cairnlake_attempt" -ge 60 ]; then
        echo "The datalake is not answering after 5 minutes: see the logs of {{ 'cairnlake-serve' if CAIRNLAKE_ENGINE == 'embedded' else 'the ClickHouse server' }}." >&2
        exit 1
    fi
    echo "Waiting for the datalake ($cairnlake_attempt/60)..."
    sleep 5
done
