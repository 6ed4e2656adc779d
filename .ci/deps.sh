#!/bin/sh
# deps.sh -- install every Debian package the build, the demo and the tests
# need. Non-interactive; postfix is preseeded to "No configuration" so that
# installing it (we only want its smtp-sink) never starts an MTA.
set -eu
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
PKGS="build-essential pkg-config
 libuv1-dev libhiredis-dev libcurl4-openssl-dev libxml2-dev libjansson-dev
 libh2o-dev libssl-dev libsmpp34-dev libglib2.0-dev libcmocka-dev
 libcairo2-dev libpango1.0-dev fonts-dejavu-core poppler-utils python3-cryptography
 libgmime-3.0-dev dovecot-pop3d dovecot-imapd
 clang libclang-rt-14-dev clang-format
 redis-server python3 python3-redis python3-aiosmtpd postfix prometheus
 procps curl ca-certificates"
echo 'postfix postfix/main_mailer_type select No configuration' | $SUDO debconf-set-selections
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $PKGS
# The npm smpp package's server is the independent SMSC of the SMPP tests.
# Node.js and npm come with the machine (never apt-get them: they clash).
if command -v npm >/dev/null 2>&1; then
    npm install --no-audit --no-fund --prefix "$(dirname "$0")/../build/npm" \
        smpp@0.5.1
else
    echo "deps: npm not found; the SMPP tests against node-smpp will fail" >&2
fi
