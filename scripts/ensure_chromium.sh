#!/usr/bin/env bash
# Make sure the system's Chromium is there for the browser tests (tests/e2e).
# Installs Debian's `chromium` package when it is missing and installing is permitted: running as
# root with apt-get available, and INSTALL_BROWSER not set to 0. Otherwise it says so and returns
# success: the browser tests then skip, or fail when REQUIRE_SERVICES=1.
set -uo pipefail
for candidate in "${CHROMIUM_PATH:-}" chromium chromium-browser; do
  if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1; then
    exit 0
  fi
done
if [ "${INSTALL_BROWSER:-1}" != "0" ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Chromium from the OS packages for the browser tests..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null && exit 0
  echo "Installing Chromium failed; the browser tests will not run." >&2
else
  echo "No Chromium here and installing it is not permitted; the browser tests will not run." >&2
fi
exit 0
