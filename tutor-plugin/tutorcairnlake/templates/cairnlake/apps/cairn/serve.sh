#!/bin/sh
# `cairn serve` listens on this container's (or pod's) own address, which it publishes in
# /data/serve.json: the jobs{% if CAIRNLAKE_RUN_SUPERSET %}, Superset{% endif %} and the collector share the data volume and reach it there.
set -e
address="${POD_IP:-$(python -c 'import socket; print(socket.gethostbyname(socket.gethostname()))')}"
exec cairn serve --host "$address" --port "{{ CAIRNLAKE_SERVE_PORT }}"
