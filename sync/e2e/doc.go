// Package e2e holds the end-to-end tests: a real relay (sync/relay) on 127.0.0.1 against real
// terminal stores driven by the real sync engine (sync/client), through a TCP proxy that can cut
// connections mid-frame, with terminal processes that can be killed; and the lifecycle model
// test (model_test.go). It has no code of its own outside its tests.
package e2e
