#!/usr/bin/env bash
# Starts the demo kiosk (what `make run` runs after building): bin/tetherdemo, the kiosk
# kioskd runs with its own relay, a seeded facility and simulated devices, in ./demo-data
# (reset at each start). The production kioskd has none of the demo in it.
# With no display it says so, runs the same demo under Xvfb, logs Maria in once through the
# simulated badge reader and PIN pad, and saves screenshots.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${TETHERDEMO:-bin/tetherdemo}
DATA=${DEMO_DATA:-demo-data}
if [ ! -x "$BIN" ]; then
	echo "run-demo: $BIN is missing; run 'make build' first" >&2
	exit 1
fi
# Fyne cannot parse the C/POSIX locale and complains; any real locale is fine.
case "${LANG:-C}" in C | C.* | POSIX) export LANG=en_US.UTF-8 ;; esac

cat <<EOT
Tether demo: a kiosk of the "Tether Demo Facility" with a built-in relay.
Badge cards and a PIN pad are in the "simulated devices" window; they write real serial
frames into pseudo-terminals. Demo people (badge, PIN):
  Maria Lopez   0004198231  2468   Spanish, \$12.00
  James Carter  0007342519  1357   English, \$3.00
  Ahmed Khan    0001128406  8024   English, \$0.03 (not enough balance)
  Dana Reyes    0009900001  9731   technician
The staff console's address and logins are printed below once the relay is up (README).
Data: $DATA (reset at each start). Stop with Ctrl-C.
EOT

if [ -n "${DISPLAY:-}" ]; then
	exec "$BIN" -data "$DATA"
fi

if ! command -v Xvfb >/dev/null; then
	echo "run-demo: no display (\$DISPLAY is empty) and Xvfb is not installed; run 'make deps'" >&2
	exit 1
fi
n=90
while [ -e "/tmp/.X$n-lock" ] || [ -e "/tmp/.X11-unix/X$n" ]; do n=$((n + 1)); done
echo
echo "No display (\$DISPLAY is empty): running the same demo under Xvfb on :$n."
# Its own session: Ctrl-C must stop the kiosk (orderly) before the X server goes away.
setsid Xvfb ":$n" -screen 0 1920x1080x24 -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
kiosk=""
cleanup() {
	if [ -n "$kiosk" ]; then kill -TERM "$kiosk" 2>/dev/null || true; wait "$kiosk" 2>/dev/null || true; fi
	kill "$xvfb" 2>/dev/null || true
	rm -f "${tour:-}"
}
trap cleanup EXIT
trap 'exit 0' INT TERM
for _ in $(seq 100); do [ -e "/tmp/.X11-unix/X$n" ] && break; sleep 0.1; done

# tetherdemo resets $DATA when it starts, before it takes these.
welcome="$DATA/welcome.png"
home="$DATA/home.png"
tour=$(mktemp)
sed "s#demo-data/home.png#$home#" assets/demo/tour.txt >"$tour"
echo "It saves a screenshot of the welcome screen to $welcome,"
echo "then logs Maria in through the simulated devices and saves her home screen to $home."
DISPLAY=":$n" "$BIN" -data "$DATA" -screenshot "$welcome" -script "$tour" &
kiosk=$!
told=""
while kill -0 "$kiosk" 2>/dev/null; do
	if [ -z "$told" ] && [ -s "$home" ]; then
		told=1
		echo
		echo "Saved $welcome and $home. The kiosk keeps running headless; Ctrl-C stops it."
	fi
	sleep 0.5
done
wait "$kiosk"
