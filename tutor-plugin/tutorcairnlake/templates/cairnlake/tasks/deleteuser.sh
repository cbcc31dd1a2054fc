# The datalake account, and its Superset login when it has one.
cairn deleteuser "$CAIRNLAKE_NAME"
