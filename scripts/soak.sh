#!/usr/bin/env bash
# Long runs kept out of `make test`: a backlog of BACKLOG (default 10,000) letters queued while
# the relay is down; the whole end-to-end suite with the relay on each store of STORES
# (default "jetstream jetstream-held": an R3 stream of a 3-node cluster, and the same with the
# relay holding its facilities in a facility log), where `make test` runs only some of it
# there; then the lifecycle model test over many seeds and steps: SEEDS (default 200) seeds
# from FIRST (default 1), STEPS (default 150) steps each. A failing run prints the command
# that replays it.
set -euo pipefail
cd "$(dirname "$0")/.."
first=${FIRST:-1}
seeds=${SEEDS:-200}
steps=${STEPS:-150}
bin=$(mktemp -d)/e2e.test
go test -c -o "$bin" ./sync/e2e/
failed=0
backlog=${BACKLOG:-10000}
if ! out=$(cd sync/e2e && TETHER_BACKLOG=$backlog "$bin" -test.run '^TestBacklogWhileRelayDown$' -test.count=1 -test.v 2>&1); then
	echo "$out" | tail -40
	echo "FAILED the backlog of $backlog letters: replay with TETHER_BACKLOG=$backlog go test ./sync/e2e/ -run TestBacklogWhileRelayDown -v"
	failed=$((failed + 1))
else
	echo "$out" | grep -E 'queued|drained'
fi
stores=${STORES-jetstream jetstream-held}
for store in $stores; do
	if ! out=$(cd sync/e2e && TETHER_RELAY_STORE=$store "$bin" -test.count=1 -test.timeout=30m 2>&1); then
		echo "$out" | tail -60
		echo "FAILED the e2e suite on $store: replay with TETHER_RELAY_STORE=$store go test ./sync/e2e/ -count=1 -v"
		failed=$((failed + 1))
	else
		echo "the e2e suite on $store: passed"
	fi
done
for ((s = first; s < first + seeds; s++)); do
	if ! out=$(cd sync/e2e && TETHER_LIFECYCLE_SEED=$s TETHER_LIFECYCLE_STEPS=$steps "$bin" -test.run '^TestLifecycleModel$' -test.count=1 2>&1); then
		echo "$out" | tail -40
		echo "FAILED seed $s: replay with TETHER_LIFECYCLE_SEED=$s TETHER_LIFECYCLE_STEPS=$steps go test ./sync/e2e/ -run TestLifecycleModel -v"
		failed=$((failed + 1))
	fi
done
echo "soak: the backlog, the e2e suite on ${stores:-no other store} and $seeds lifecycle seeds, $failed failed ($steps steps each)"
[ "$failed" -eq 0 ]
