"""The datalake schema: ordered SQL migrations (``migrations/*.sql``) and the runner that applies them."""
