package kioskapp

import "syscall"

// onMainThread reports whether the caller runs on the process's main thread, the one Fyne's
// event loop holds (its driver locks the main goroutine to it at init): on Linux the main
// thread's id is the process id.
func onMainThread() bool { return syscall.Gettid() == syscall.Getpid() }
