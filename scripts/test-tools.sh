#!/usr/bin/env bash
# Installs the Debian packages that some tests drive for real, when they are missing:
#   prometheus  (a real Prometheus scrapes /metrics)
#   chromium    (Playwright drives it for the review-page tests in tests/ui/)
#   dovecot-imapd (a real IMAP server for the intake's mailbox tests in tests/intake/;
#                 lockgate.testing.mailbox starts it unprivileged in a temporary folder)
# Tests that need a missing tool skip with the reason; in CI (CI set) a failed install fails.
set -euo pipefail

log() { printf 'scripts/test-tools.sh: %s\n' "$*" >&2; }

missing=()
[ -x /usr/bin/prometheus ] || missing+=(prometheus)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/sbin/dovecot ] || missing+=(dovecot-imapd)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    log "not installing ${missing[*]} (needs root and apt-get); the tests that use them will skip"
    exit 0
fi
log "installing Debian packages: ${missing[*]}"
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
    log "could not install ${missing[*]}"
    [ -n "${CI:-}" ] && exit 1
fi
# The packages start their own Prometheus and Dovecot services where an init system runs;
# tests start theirs.
exit 0
