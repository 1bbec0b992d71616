//go:build !linux

package kioskapp

// onMainThread cannot tell threads apart here; every UI call runs, as before the check.
func onMainThread() bool { return true }
