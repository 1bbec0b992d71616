// Package hardware groups the kiosk's serial peripherals: badge readers and PIN pads.
//
// Sub-packages, one job each:
//   - serialport: our Port interface over github.com/tarm/serial, plus port listing.
//   - badge: streaming frame decoders (em4100, wiegand26, magstripe, line) and encoders.
//   - pinpad: key map, debouncing and PIN assembly.
//   - device: the manager that owns one goroutine per port, reconnects and reports state.
//   - sim: pseudo-terminal simulators that write real frames, for the demo and the tests.
package hardware
