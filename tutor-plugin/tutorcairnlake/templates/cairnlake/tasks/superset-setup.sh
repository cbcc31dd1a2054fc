# Superset: configuration, metadata database, the Cairn role, the admin, then Cairn's
# dashboards (imported through a temporary web server inside this job).
{% if CAIRNLAKE_RUN_SUPERSET -%}
cairn superset setup
{%- else -%}
echo "Superset is off (CAIRNLAKE_RUN_SUPERSET=false): nothing to set up."
{%- endif %}
