package main

import (
	"net"

	"github.com/pion/transport"
	"github.com/pion/transport/stdnet"
)

// receiveBuffer is what each participant's socket asks the kernel for. The server sends
// a keyframe (tens of packets) to a subscriber in one burst; with the default buffer
// (about 200 KB, which a loopback datagram of 1.2 KB fills at a few KB each) the kernel
// dropped part of each such burst before pion read it, so the generator, not the
// server, was losing packets. Browsers ask for more than the default too.
const receiveBuffer = 4 << 20

// bigBufferNet is the standard network whose UDP sockets get receiveBuffer.
type bigBufferNet struct{ *stdnet.Net }

func (n bigBufferNet) ListenUDP(network string, local *net.UDPAddr) (transport.UDPConn, error) {
	conn, err := net.ListenUDP(network, local)
	if err != nil {
		return nil, err
	}
	_ = conn.SetReadBuffer(receiveBuffer) // capped by net.core.rmem_max; a smaller one still works
	return conn, nil
}

func newNet() (transport.Net, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, err
	}
	return bigBufferNet{n}, nil
}
