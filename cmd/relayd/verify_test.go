package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// relayd verify checks a stopped relay's file: "relay ok" on a sound one; on one whose running
// totals were changed behind the relay's back, the problem and a failure; on a running relay the
// refusal to share its file. The admin API answers the same report while it runs.
func TestVerifyCommand(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{TokenEnv: "verify-test-token-0123456789"}
	base, _, _, stop := start(t, []string{"-data", dir, "-listen", "127.0.0.1:0"}, env)
	req, _ := http.NewRequest("GET", base+"/admin/v1/verify", nil)
	req.Header.Set("Authorization", "Bearer "+env[TokenEnv])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var live struct {
		OK bool `json:"ok"`
	}
	err = json.NewDecoder(resp.Body).Decode(&live)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !live.OK {
		t.Fatalf("GET /admin/v1/verify: %d ok=%v %v", resp.StatusCode, live.OK, err)
	}
	var out syncBuf
	if err := run(context.Background(), []string{"verify", "-data", dir}, nil, &out, io.Discard, nil); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("verify of a running relay: %v", err)
	}
	stop()

	out = syncBuf{}
	if err := run(context.Background(), []string{"verify", "-data", dir}, nil, &out, io.Discard, nil); err != nil || !strings.Contains(out.String(), "relay ok") {
		t.Fatalf("verify of a sound relay: %v, %q", err, out.String())
	}

	db, err := bolt.Open(filepath.Join(dir, "relay.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("balances")).Put([]byte("A1"), []byte(`{"deposits_cents":5000,"charges_cents":0,"credits_cents":0}`))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	out = syncBuf{}
	err = run(context.Background(), []string{"verify", "-data", dir}, nil, &out, io.Discard, nil)
	if err == nil || exitStatus(err) != 1 || !strings.Contains(out.String(), "balance: inmate A1") {
		t.Fatalf("verify of money minted behind the relay's back: exit %d %v, %q", exitStatus(err), err, out.String())
	}
}

// relayd repair-ids on a stopped relay's file rebuilds nothing and says why: a bbolt file
// made by relayd keeps item ids in item_ids, not in facility records; on a running relay it
// is refused the file, as verify is. (What it rebuilds where ids are kept by facility, and
// that a terminal's resend is then kept once, is sync/relay's TestRepairRebuildsADamagedIDSpan.)
func TestRepairIDsCommand(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{TokenEnv: "repair-test-token-0123456789"}
	_, _, _, stop := start(t, []string{"-data", dir, "-listen", "127.0.0.1:0"}, env)
	var out syncBuf
	if err := run(context.Background(), []string{"repair-ids", "-data", dir}, nil, &out, io.Discard, nil); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("repair-ids on a running relay: %v", err)
	}
	stop()
	out = syncBuf{}
	if err := run(context.Background(), []string{"repair-ids", "-data", dir}, nil, &out, io.Discard, nil); err != nil || !strings.Contains(out.String(), "keeps item ids in item_ids: nothing to repair") {
		t.Fatalf("repair-ids on a relay keeping ids in item_ids: %v, %q", err, out.String())
	}
	out = syncBuf{}
	if err := run(context.Background(), []string{"repair-ids", "-data", dir, "-json"}, nil, &out, io.Discard, nil); err != nil || !strings.Contains(out.String(), `"by_facility": false`) {
		t.Fatalf("repair-ids -json on a sound relay: %v, %q", err, out.String())
	}
	if err := run(context.Background(), []string{"repair-ids"}, nil, &out, io.Discard, nil); err == nil || exitStatus(err) != 2 {
		t.Fatalf("repair-ids with neither -data nor -store: exit %d %v, want a usage error", exitStatus(err), err)
	}
}
