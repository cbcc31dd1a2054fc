"""`cairn serve`: the ClickHouse HTTP interface over the embedded engine, with users and access rights."""
