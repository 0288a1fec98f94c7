#!/usr/bin/env bash
# Writes docs/status-page.png: a screenshot of the admin listener's status page (GET /) taken by
# headless Chromium, against `dripgate demo` after its sample users signed in (and so migrated).
# Needs chromium (Debian: apt-get install chromium) and curl. Usage: scripts/screenshot-status.sh [OUT.png]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/status-page.png}
listen=127.0.0.1:${DEMO_PORT:-18080}
admin=127.0.0.1:${DEMO_ADMIN_PORT:-19090}
chromium=$(command -v chromium || command -v chromium-browser) || { echo "chromium is missing" >&2; exit 1; }

cargo build --quiet
work=$(mktemp -d)
demo_pid=""
cleanup() {
  if [ -n "$demo_pid" ]; then kill -INT "$demo_pid" 2>/dev/null || true; wait "$demo_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

target/debug/dripgate demo --listen "$listen" --admin "$admin" --users 300 --data-dir "$work/data" \
  >"$work/demo.log" 2>&1 &
demo_pid=$!
for _ in $(seq 1 60); do
  grep -q 'Ctrl-C stops everything' "$work/demo.log" && break
  sleep 0.5
done
grep -q 'Ctrl-C stops everything' "$work/demo.log" || { cat "$work/demo.log" >&2; exit 1; }

# The banner's sample users sign in through dripgate: each first sign-in migrates the user.
awk '/^Sample users/ {on=1; next} on && NF==0 {exit} on {print $1, $2}' "$work/demo.log" >"$work/users"
while read -r email password; do
  curl -s -o /dev/null --data-urlencode "email=$email" --data-urlencode "password=$password" \
    "http://$listen/login"
done <"$work/users"
# Migration runs beside each sign-in: wait (bounded) until every sample user has moved.
want=$(wc -l <"$work/users")
for _ in $(seq 1 80); do
  curl -s "http://$admin/status" | grep -q "\"migrated_users\": *$want[,}]" && break
  sleep 0.25
done

"$chromium" --headless --no-sandbox --disable-gpu --disable-background-networking \
  --disable-component-update --no-first-run --hide-scrollbars --user-data-dir="$work/profile" \
  --window-size=1200,1000 --virtual-time-budget=5000 --screenshot="$PWD/$out" "http://$admin/" \
  >"$work/chromium.log" 2>&1 || { cat "$work/chromium.log" >&2; exit 1; }
echo "wrote $out"
