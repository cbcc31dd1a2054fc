# Datalake account (rows of its courses/orgs only){% if CAIRNLAKE_RUN_SUPERSET %} and its Superset login (same name and password){% endif %}.
if [ -z "$CAIRNLAKE_PASSWORD" ]; then
    CAIRNLAKE_PASSWORD=$(python -c 'import secrets; print(secrets.token_urlsafe(18))')
    echo "Generated password for $CAIRNLAKE_NAME: $CAIRNLAKE_PASSWORD"
fi
printf '%s' "$CAIRNLAKE_PASSWORD" | cairn createuser "$CAIRNLAKE_NAME" --password-stdin {% if CAIRNLAKE_RUN_SUPERSET %}--email "$CAIRNLAKE_EMAIL" {% endif %}"$@"
