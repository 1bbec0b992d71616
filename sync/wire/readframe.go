package wire

import "io"

// ReadFrame reads one message's bytes from rd (a websocket message reader; the connection's
// read limit still applies) into a buffer sized from *hint, the length of the connection's
// last message, which it then updates. Growing the result from 512 bytes by appending, as
// websocket.Conn.Read does, cost a 256 KiB chunk about five times its size in garbage, most
// of a terminal's heap while it pulled content. Nothing is kept between messages (a decoded
// frame may hold slices of the buffer). A peer that sends a small frame after a large one
// costs one allocation of the large one's size, never more: the hint is the last length, not
// the largest. Terminal and relay both read through it.
func ReadFrame(rd io.Reader, hint *int) ([]byte, error) {
	buf := make([]byte, 0, max(512, *hint+*hint/16))
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	*hint = min(len(buf), MaxFrameBytes)
	return buf, nil
}
