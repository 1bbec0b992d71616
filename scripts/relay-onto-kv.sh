#!/usr/bin/env bash
# relay-onto-kv.sh: the mechanical part of moving sync/relay from bbolt onto the kv interface
# (sync/relay/kv, docs/SCALE.md "The kv layer"). It is idempotent: run it again over files
# another branch changed (e.g. after a merge) and it rewrites only what is still on bbolt.
#
#   scripts/relay-onto-kv.sh [file.go ...]    (default: sync/relay/*.go sync/relay/console/*.go;
#                                              load_bench_test.go and *_bbolt_test.go are
#                                              always left on bbolt)
#
# What it does, and nothing more (the rest is hand edits, one commit each):
#   - *bolt.Tx, *bolt.Bucket, *bolt.Cursor, *bolt.DB become kv.Tx, kv.Bucket, kv.Cursor,
#     kv.Store;
#   - b.Stats().KeyN becomes b.KeyN();
#   - X.db.View(func / X.db.Update(func (and a test's db.View/db.Update) gain a first
#     argument context.Background(): kv's transactions take a context;
#   - in tests, bolt.Open(<path of DBFile>, 0o600, nil) becomes boltkv.Open(<path>, nil), so
#     a test that edits a closed relay's file goes through the same kv.Tx the relay's helpers
#     now take;
#   - imports: kv, boltkv and context are added where now used; bbolt's is dropped where no
#     longer used; then gofmt.
# Left for hand edits (they do not compile after the script, on purpose, so none is missed):
# the bbolt-only calls (Tx.WriteTo, Tx.Size, Tx.Check, Tx.ForEach over root buckets,
# bolt.Options, bolt.ErrDatabaseNotOpen) in store.go, backup.go, verify.go, conn.go.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -eq 0 ]; then
	set -- sync/relay/*.go sync/relay/console/*.go
fi
# load_bench_test.go's baseline is bbolt itself (what the relay's group commit is compared
# with), and a *_bbolt_test.go compares the relay with bbolt's own view of its file: they stay
# on bbolt.
files=()
for f in "$@"; do
	case "$f" in
	*/load_bench_test.go | *_bbolt_test.go) ;;
	*) files+=("$f") ;;
	esac
done
set -- "${files[@]}"

KV='"github.com/tether-kiosk/tether/sync/relay/kv"'
BOLTKV='"github.com/tether-kiosk/tether/sync/relay/kv/boltkv"'

for f in "$@"; do
	perl -0pi -e '
		s/\*bolt\.Tx\b/kv.Tx/g;
		s/\*bolt\.Bucket\b/kv.Bucket/g;
		s/\*bolt\.Cursor\b/kv.Cursor/g;
		s/\*bolt\.DB\b/kv.Store/g;
		s/\.Stats\(\)\.KeyN\b/.KeyN()/g;
		s/\b((?:[a-z]\.)*db)\.(View|Update)\((?=func\(|fn\))/$1.$2(context.Background(), /g;
		# Root buckets: bbolt hands ForEach the bucket, kv lists names (ForEachBucket).
		s/\btx\.ForEach\(func\(_ \[\]byte, (\w+) kv\.Bucket\) error \{\n/tx.ForEachBucket(func(name []byte) error {\n$1 := tx.Bucket(name)\n/g;
		s/\btx\.ForEach\(func\((\w+) \[\]byte, (\w+) kv\.Bucket\) error \{\n/tx.ForEachBucket(func($1 []byte) error {\n$2 := tx.Bucket($1)\n/g;
		# bbolt-only calls reach the bbolt transaction (nil on another store: the hand edits
		# put each behind a check).
		s/\btx\.(WriteTo|Size|Check)\(/boltkv.BoltTx(tx).$1(/g;
		# The opener keeps the checks of kiosk/boltfile and hands the file to boltkv.
		s/(\w+), err := boltfile\.Open\(([^\n]*)\)\n/$1, err := boltkv.Own(boltfile.Open($2))\n/g;
		# kv cursors do not delete: delete the key the cursor landed on through its bucket.
		s/\bif err := c\.Delete\(\); err != nil/if err := b.Delete(k); err != nil/g;
	' "$f"
	case "$f" in
	*_test.go)
		perl -0pi -e 's{\bbolt\.Open\(((?:[^,()]|\([^()]*\))+), 0o600, nil\)}{my $p = $1; $p =~ /\bDBFile\b/ ? "boltkv.Open($p, nil)" : "bolt.Open($p, 0o600, nil)"}ge' "$f"
		;;
	esac

	# Imports: add what is used and missing, drop bbolt's if unused. Every file here has a
	# parenthesised import block.
	# The standard library's go first in the block; the project's go next to its other
	# imports (or in place of bbolt's), and gofmt sorts each group.
	add_import() { # file, import path, use-regexp, std|project
		if grep -qE "$3" "$1" && ! grep -qF "$2" "$1"; then
			if [ "$4" = std ]; then
				IMP="$2" perl -0pi -e 's/^import \(\n/import (\n\t$ENV{IMP}\n/m' "$1"
			elif grep -q '^	"github.com/tether-kiosk/tether/' "$1"; then
				IMP="$2" perl -0pi -e 's/^(\t"github\.com\/tether-kiosk\/tether\/)/\t$ENV{IMP}\n$1/m' "$1"
			else
				IMP="$2" perl -0pi -e 's/^(\tbolt "go\.etcd\.io\/bbolt"\n)/$1\n\t$ENV{IMP}\n/m' "$1"
			fi
		fi
	}
	add_import "$f" "$KV" '\bkv\.[A-Z]' project
	add_import "$f" "$BOLTKV" '\bboltkv\.[A-Z]' project
	add_import "$f" '"context"' '\bcontext\.[A-Z]' std
	if ! grep -qE '\bbolt\.[A-Za-z]' "$f"; then
		perl -0pi -e 's/^\tbolt "go\.etcd\.io\/bbolt"\n//m' "$f"
	fi
done
gofmt -w "$@"
