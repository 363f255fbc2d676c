#!/usr/bin/env bash
# System programs that some tests need, from Debian's packages — run by `make setup` (so by both README commands).
# Best effort: without apt-get, root or a package mirror, it says so and the tests that need a program skip with a message.
#   redis-server  the shared rate-limit store of the service (tests/unit/serve/test_limits.py starts its own server on a free
#                 127.0.0.1 port and stops it). Installed with a temporary policy-rc.d that forbids starting services,
#                 so no Redis daemon is left running on the machine, with or without an init system.
#   chromium      only with a second argument `chromium` (make site-check): the headless browser that opens every page of
#                 the built site (tools/site_check.py); large, so not part of every setup
#   promtool      Prometheus's rule checker (tests/integration/test_deploy.py): unpacked from Debian's prometheus package into
#                 VENV/tools rather than installed, so no Prometheus server is installed or started
set -uo pipefail
venv=${1:-.venv}
root=$PWD
case "$venv" in /*) tools="$venv/tools" ;; *) tools="$root/$venv/tools" ;; esac
have() { command -v "$1" >/dev/null 2>&1; }
if ! have apt-get; then
  have redis-server || echo "note: no apt-get here; install redis-server yourself for the shared rate-limit tests"
  have promtool || echo "note: no apt-get here; put promtool (Prometheus) on PATH for the alert-rule tests"
  exit 0
fi
updated=0
update() { if [ "$updated" = 0 ] && [ "$(id -u)" = 0 ]; then timeout 120 apt-get update -qq >/dev/null 2>&1; updated=1; fi; }
if [ "${2:-}" = chromium ]; then
  if ! have chromium; then
    if [ "$(id -u)" = 0 ]; then
      update
      DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
        || echo "note: apt-get install chromium failed; make site-check needs a Chromium (or --chromium PATH)"
    else
      echo "note: chromium is missing and this is not root: sudo apt-get install chromium"
    fi
  fi
  exit 0
fi
if ! have redis-server; then
  if [ "$(id -u)" = 0 ]; then
    update
    policy=/usr/sbin/policy-rc.d; made_policy=0
    if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && made_policy=1; fi
    DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq --no-install-recommends redis-server >/dev/null 2>&1 \
      || echo "note: apt-get install redis-server failed; the shared rate-limit tests will be skipped"
    [ "$made_policy" = 1 ] && rm -f "$policy"
  else
    echo "note: redis-server is missing and this is not root: sudo apt-get install redis-server (or the tests that need it skip)"
  fi
fi
if ! have promtool && [ ! -x "$tools/promtool" ]; then
  update
  tmp=$(mktemp -d)
  ( cd "$tmp" && timeout 180 apt-get download prometheus >/dev/null 2>&1 && dpkg-deb -x prometheus_*.deb x \
      && mkdir -p "$tools" && install -m 755 x/usr/bin/promtool "$tools/promtool" ) \
    || echo "note: could not fetch promtool with apt-get; the Prometheus rule tests will be skipped"
  rm -rf "$tmp"
fi
exit 0
