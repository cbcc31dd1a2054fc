# Superset: metadata database, admin, the datalake connection and Cairn's dashboards.
{% if CAIRNLAKE_RUN_SUPERSET -%}
cairn superset setup
{%- else -%}
echo "Superset is off (CAIRNLAKE_RUN_SUPERSET=false): nothing to set up."
{%- endif %}
