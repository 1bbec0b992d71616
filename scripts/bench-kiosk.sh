#!/usr/bin/env bash
# Kiosk app figures for docs/BENCHMARKS.md: time from start to the welcome screen, resident
# memory of an idle kiosk, and time from the last PIN key to the home screen. It runs the real
# tetherdemo (the kiosk with the demo's relay and devices) RUNS times in a real window under
# its own Xvfb, drives a login through the simulated badge reader and PIN pad, and prints
# medians with the machine they ran on.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
case "${LANG:-C}" in C | C.* | POSIX) export LANG=en_US.UTF-8 ;; esac
command -v Xvfb >/dev/null || { echo "bench-kiosk: Xvfb is not installed (make deps)" >&2; exit 1; }
mkdir -p bin
go build -o bin/ ./cmd/kioskd ./cmd/tetherdemo

work=$(mktemp -d)
n=90
while [ -e "/tmp/.X$n-lock" ] || [ -e "/tmp/.X11-unix/X$n" ]; do n=$((n + 1)); done
setsid Xvfb ":$n" -screen 0 1920x1080x24 -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
trap 'kill $xvfb 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do [ -e "/tmp/.X11-unix/X$n" ] && break; sleep 0.1; done

cat >"$work/script.txt" <<'EOT'
wait welcome 120s
sleep 5s
rss
verify
badge 0007342519
wait pin 30s
pin 1357
wait notice 30s
tap notice.accept
wait home 30s
quit
EOT
for i in $(seq "$RUNS"); do
	# A hung run dumps its goroutines (SIGQUIT) into the log kept in /tmp.
	DISPLAY=":$n" timeout -s QUIT 120 bin/tetherdemo -data "$work/data" -script "$work/script.txt" >"$work/run$i.log" 2>&1 ||
		{ cp "$work/run$i.log" /tmp/bench-kiosk-failed.log; echo "run $i failed (log: /tmp/bench-kiosk-failed.log):"; tail -20 "$work/run$i.log"; exit 1; }
	echo "run $i done" >&2
done

# A plain kiosk as a facility runs it (no demo relay, no seeding, not enrolled, one badge
# reader not plugged in): start -> welcome and resident memory after 5 s idle.
cat >"$work/plain.json" <<EOT
{"mode": "kiosk", "devices": [{"name": "badge reader", "role": "badge", "path": "$work/no-such-tty", "framing": "em4100"}]}
EOT
for i in $(seq "$RUNS"); do
	rm -rf "$work/plain"
	DISPLAY=":$n" bin/kioskd -config "$work/plain.json" -data "$work/plain" >"$work/plain$i.log" 2>&1 &
	pid=$!
	for _ in $(seq 300); do grep -q "screen: welcome" "$work/plain$i.log" && break; sleep 0.1; done
	sleep 5
	awk '/^VmRSS/ {print "plain rss", $2}' "/proc/$pid/status" >"$work/plain$i.rss"
	kill -TERM "$pid"
	wait "$pid" || true
	echo "plain run $i done" >&2
done

python3 - "$work" "$RUNS" <<'EOT'
import re, statistics, sys, os, platform, subprocess
work, runs = sys.argv[1], int(sys.argv[2])
def dur(s):
    total = 0.0
    for v, u in re.findall(r'([\d.]+)(ms|µs|us|s|m|h)', s):
        total += float(v) * {'ms': 1, 'µs': 1e-3, 'us': 1e-3, 's': 1e3, 'm': 6e4, 'h': 3.6e6}[u]
    return total
pats = {
    'seed':    (r'demo: facility seeded in (\S+)', dur),
    'window':  (r'window shown \((\S+) after start\)', dur),
    'welcome': (r'screen: welcome \((\S+) after start', dur),
    'welcome_store': (r'screen: welcome \(\S+ after start, (\S+) after the store opened\)', dur),
    'rss':     (r'bench: rss ([\d.]+) MiB', float),
    'rss_gc':  (r'bench: rss [\d.]+ MiB \(([\d.]+) MiB after', float),
    'argon':   (r'bench: one argon2id PIN check (\S+)', dur),
    'notice':  (r'bench: notice (\S+) after the last PIN key', dur),
    'home':    (r'bench: home (\S+) after the last PIN key', dur),
    'accept':  (r'bench: home (\S+) after the notice was accepted', dur),
}
plain = {
    'p_welcome': (r'screen: welcome \((\S+) after start', dur),
    'p_rss':     (r'plain rss (\d+)', lambda v: float(v) / 1024),
}
vals = {k: [] for k in list(pats) + list(plain)}
for i in range(1, runs + 1):
    log = open(os.path.join(work, f'plain{i}.log')).read() + open(os.path.join(work, f'plain{i}.rss')).read()
    for k, (p, f) in plain.items():
        m = re.search(p, log)
        if m:
            vals[k].append(f(m.group(1)))
for i in range(1, runs + 1):
    log = open(os.path.join(work, f'run{i}.log')).read()
    for k, (p, f) in pats.items():
        m = re.search(p, log)
        if m:
            vals[k].append(f(m.group(1)))
med = {k: statistics.median(v) for k, v in vals.items() if v}
rng = {k: (min(v), max(v)) for k, v in vals.items() if v}
def cpu():
    for l in open('/proc/cpuinfo'):
        if l.startswith('model name'):
            return l.split(':', 1)[1].strip()
    return platform.processor()
mem = [l for l in open('/proc/meminfo') if l.startswith('MemTotal')][0].split()[1]
go = subprocess.run(['go', 'version'], capture_output=True, text=True).stdout.strip()
print(f"Machine: {os.cpu_count()} CPUs, {cpu()}, {int(mem)//1024} MiB RAM, {platform.system()} {platform.release()}, {go}")
print(f"Load average at the end: {open('/proc/loadavg').read().split()[:3]}; display: Xvfb 1920x1080x24, Mesa software GL")
print(f"Runs: {runs}; medians (min..max)")
def row(name, k, unit='ms'):
    if k in med:
        lo, hi = rng[k]
        print(f"| {name} | {med[k]:.0f} {unit} | {lo:.0f}..{hi:.0f} |")
print("| figure | median | range |")
print("|---|---|---|")
row("plain kiosk: start -> welcome screen", 'p_welcome')
row("plain kiosk: idle RSS 5 s after welcome", 'p_rss', 'MiB')
row("demo: start -> welcome screen (relay + seeding + kiosk)", 'welcome')
row("  of which the demo's relay and seeding", 'seed')
row("store opened -> welcome screen (the kiosk itself)", 'welcome_store')
row("start -> window shown (baseline: GL window up, empty)", 'window')
row("idle RSS, 5 s after welcome (demo process: kiosk + relay)", 'rss', 'MiB')
row("  same, after returning freed memory to the OS", 'rss_gc', 'MiB')
row("last PIN key -> notice screen", 'notice')
row("notice accepted (tap) -> home screen", 'accept')
row("last PIN key -> home screen (notice tapped at once)", 'home')
row("one argon2id PIN check (baseline)", 'argon')
if 'home' in med and 'argon' in med and med['argon'] > 0:
    print(f"ratio: last PIN key -> notice = {med['notice']/med['argon']:.1f}x one PIN check")
EOT
