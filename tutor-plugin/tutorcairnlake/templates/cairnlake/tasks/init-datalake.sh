# Datalake: schema migrations, the services' admin account, the Open edX MySQL tables, Superset.
{% include "cairnlake/tasks/wait-datalake.sh" %}
cairn migrate
{% if CAIRNLAKE_ENGINE == "embedded" -%}
# The account the collectors (Kubernetes) and Superset use to reach `cairn serve`.
printf '%s' '{{ CAIRNLAKE_ADMIN_PASSWORD }}' | cairn createuser '{{ CAIRNLAKE_ADMIN_USERNAME }}' --admin --replace --password-stdin
{%- endif %}
{% if CAIRNLAKE_MYSQL_ENABLED -%}
cairn mysql apply
{%- endif %}
{% if CAIRNLAKE_RUN_SUPERSET -%}
{% include "cairnlake/tasks/superset-setup.sh" %}
{%- endif %}
cairn status
