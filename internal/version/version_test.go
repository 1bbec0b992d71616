package version

import "testing"

// A build that was not packaged says so, rather than an empty version in the technicians'
// About screen and relayd's /metrics; the packaged value is checked by scripts/package.
func TestUnpackagedBuildIsDev(t *testing.T) {
	if got := String(); got != "dev" {
		t.Fatalf("String() = %q in a test build, want dev", got)
	}
}
