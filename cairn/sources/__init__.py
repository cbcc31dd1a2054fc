"""Open edX data other than tracking logs: the MySQL tables and the course structure."""
