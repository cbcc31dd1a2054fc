"""Apache Superset beside the datalake: its configuration, process, logins and dashboards.

Superset runs from a virtual environment of its own (``superset.venv``: it pins
SQLAlchemy 1.4 and pandas 2.1, which Cairn's environment does not use). Cairn talks
to it three ways: it renders ``superset_config.py`` into the data directory
(``home``), runs Superset's CLI and small scripts in that environment (``venv``,
``logins``), and supervises its web server (``server``) from `cairn up`.
Every query a person runs in Superset reaches `cairn serve` as that person's
datalake user (cairn/serve/delegation.py).
"""
