#!/usr/bin/env bash
# Make sure the headless browser of the end-to-end tests is installed: Debian's chromium
# (Playwright drives /usr/bin/chromium; it downloads no browser of its own) and its driver.
set -euo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  echo "Chromium is installed ($(/usr/bin/chromium --version 2>/dev/null || echo unknown version))"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "Install Chromium (/usr/bin/chromium) for the browser tests: this script knows only apt-get" >&2
  exit 1
fi
echo "Installing Chromium..."
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
/usr/bin/chromium --version
