#!/usr/bin/env bash
# Install the two tools tests/ops uses, from Debian's packages:
#   * promtool (checks and unit-tests the Prometheus config and alert rules), unpacked from
#     the prometheus .deb into .ci/tools/: we need the binary, not a Prometheus server
#     installed as a system service, so the package is downloaded and extracted, not installed;
#   * docker-compose 1.29 (validates docker-compose.yml with `config -q`; needs no engine).
# Idempotent and quiet: exits 0 at once when both are there; prints apt's output only when a
# step fails. Needs root (apt-get), as CI and the developers' machines have.
set -euo pipefail
cd "$(dirname "$0")/.."

tools=.ci/tools
have_promtool() { [ -x "$tools/promtool" ] && "$tools/promtool" --version >/dev/null 2>&1; }
have_compose() { command -v docker-compose >/dev/null 2>&1; }

if have_promtool && have_compose; then
  exit 0
fi

INSTALLER=install-ops-tools
# shellcheck source=ops/apt-quietly.sh
source ops/apt-quietly.sh
quietly apt-get update -qq

if ! have_promtool; then
  mkdir "$work/deb"
  # apt downloads as the unprivileged _apt user when it can write the directory.
  chown _apt "$work/deb" 2>/dev/null || true
  (cd "$work/deb" && quietly apt-get download -qq prometheus)
  quietly dpkg-deb -x "$(ls "$work"/deb/prometheus_*.deb)" "$work/root"
  mkdir -p "$tools"
  install -m 0755 "$work/root/usr/bin/promtool" "$tools/promtool"
fi

if ! have_compose; then
  quietly apt-get install -y -qq --no-install-recommends docker-compose
fi

echo "install-ops-tools: $("$tools/promtool" --version 2>&1 | head -n 1)"
echo "install-ops-tools: docker-compose $(docker-compose version --short)"
