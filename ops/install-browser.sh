#!/usr/bin/env bash
# Install the browser the console's browser tests (tests/browser) drive, from Debian's packages:
#   * chromium: /usr/bin/chromium, launched headless by Playwright for Python with
#     executable_path="/usr/bin/chromium" (Playwright's own browser download is not used:
#     it fetches a prebuilt binary from outside the package registries);
#   * fonts-dejavu-core and fonts-liberation: text in the screenshots (docs/console/*.png)
#     renders as letters, not as empty boxes, on a machine with no desktop fonts.
# Playwright itself is a Python package in the `dev` extra (pyproject.toml).
# Idempotent and quiet: exits 0 at once when all are there; prints apt's output only when a
# step fails. Needs root (apt-get), as CI and the developers' machines have.
set -euo pipefail
cd "$(dirname "$0")/.."

browser=/usr/bin/chromium
packages=(chromium fonts-dejavu-core fonts-liberation)

have_browser() { [ -x "$browser" ] && "$browser" --version >/dev/null 2>&1; }
have_package() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }
all_there() {
  have_browser || return 1
  for package in "${packages[@]}"; do
    have_package "$package" || return 1
  done
}

if all_there; then
  exit 0
fi

INSTALLER=install-browser
# shellcheck source=ops/apt-quietly.sh
source ops/apt-quietly.sh
quietly apt-get update -qq
quietly apt-get install -y -qq --no-install-recommends "${packages[@]}"

if ! have_browser; then
  echo "install-browser: $browser is missing or does not start after installing chromium" >&2
  exit 1
fi
echo "install-browser: $("$browser" --version 2>/dev/null | head -n 1)"
