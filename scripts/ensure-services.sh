#!/usr/bin/env bash
# Make sure the local services the tests use are running: MariaDB (stand-in for the
# Open edX MySQL database). Installs it from Debian's packages on a machine without it.
set -euo pipefail

mariadb_up() { mysqladmin --host=127.0.0.1 --port=3306 --user=root ping >/dev/null 2>&1; }

if ! mariadb_up; then
  if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
    echo "Installing MariaDB..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq mariadb-server mariadb-client >/dev/null
  fi
  echo "Starting MariaDB..."
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
  for _ in $(seq 1 60); do mariadb_up && break; sleep 1; done
fi
mariadb_up || { echo "MariaDB is not answering on 127.0.0.1:3306" >&2; exit 1; }
# Tests connect as root over TCP with an empty password (the machine's default set-up).
mysql --host=127.0.0.1 --user=root -e "SELECT 1" >/dev/null
echo "MariaDB is up on 127.0.0.1:3306"
