cairn deleteuser "$CAIRNLAKE_NAME"
