# Datalake account (rows of its courses/orgs only), then its Superset login.
if [ -z "$CAIRNLAKE_PASSWORD" ]; then
    CAIRNLAKE_PASSWORD=$(python -c 'import secrets; print(secrets.token_urlsafe(18))')
    echo "Generated password for $CAIRNLAKE_NAME: $CAIRNLAKE_PASSWORD"
fi
printf '%s' "$CAIRNLAKE_PASSWORD" | cairn createuser "$CAIRNLAKE_NAME" --password-stdin "$@"
