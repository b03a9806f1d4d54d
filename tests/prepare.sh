#!/bin/sh
# Install what the test suite needs on a fresh Debian machine: the package
# with its test extras, Debian's MQTT clients and broker, and the npm clients.
# Safe to run again: each step skips work that is already done.
set -eu
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check '.[test]'

# The mosquitto package brings the broker and mosquitto_passwd, which the
# password-file tests use to write files in Mosquitto's own format.
if ! command -v mosquitto_sub >/dev/null 2>&1 || ! command -v mosquitto >/dev/null 2>&1 \
    || ! command -v mosquitto_passwd >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients
    else
        sudo apt-get update -qq
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients
    fi
fi

# gcc and make build the benchmark's load generator (bench/loadgen), which
# the tests in tests/bench build and run.
if ! command -v cc >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev make
    else
        sudo apt-get update -qq
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev make
    fi
fi

if [ -f tests/js/package.json ] && [ ! -d tests/js/node_modules ]; then
    (cd tests/js && npm ci --silent --no-audit --no-fund)
fi
