#!/usr/bin/env bash
# Debian's Chromium, for the report's browser test (tests/integration/test_report_browser.py
# drives it headless over the DevTools protocol). No browser download of any other kind.
#
#   scripts/browser.sh        # installs chromium when it is missing; prints its path
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "chromium is missing: run 'apt-get install chromium' as root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
fi
command -v chromium
