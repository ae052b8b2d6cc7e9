#!/bin/sh
# Installs the Prometheus server (Debian package `prometheus`) for the controller's end-to-end tests.
# Called by `make test`; a no-op when the binary is already there; never fails the test run (the
# tests that need Prometheus skip with a clear reason when it is still missing).
if command -v prometheus >/dev/null 2>&1 || [ -x /usr/bin/prometheus ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
        echo "setup_prometheus: not root and no sudo: Prometheus tests will be skipped" >&2; exit 0; fi
fi
if command -v apt-get >/dev/null 2>&1; then
    # Only the server binary is needed; the service is not started (tests start their own on loopback).
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus >/dev/null 2>&1 \
      || { $SUDO apt-get update >/dev/null 2>&1 && \
           $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus >/dev/null 2>&1; } \
      || echo "setup_prometheus: apt-get install prometheus failed: Prometheus tests will be skipped" >&2
else
    echo "setup_prometheus: no apt-get: install Prometheus >= 2.x to run the controller's Prometheus tests" >&2
fi
exit 0
