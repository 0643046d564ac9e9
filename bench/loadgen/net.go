package main

import (
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/pion/transport"
	"github.com/pion/transport/stdnet"
)

// Every participant's media socket is read in turns of the pacing clock rather than
// whenever a packet arrives. A socket in Go's poller wakes the process for each datagram
// the server sends, and those wake-ups, not the packets' work, were most of what the
// generator cost. So the sockets here are plain non-blocking sockets outside the poller:
// each turn of the clock opens a gate, and the reader of each socket that has something
// waiting takes everything that came since (recvmmsg), hands it to pion one datagram at a
// time, and sleeps until a turn finds more. A packet may wait up to one turn
// (pacerInterval) before pion sees it; the delays the generator reports are taken from
// the kernel's receive timestamp (SO_TIMESTAMPNS), so the wait is not counted against
// the server.

const (
	// receiveBuffer is what each socket asks the kernel for: the server sends a keyframe
	// (tens of packets) in one burst, and a socket read once a turn must hold a turn's
	// worth of them. Capped by net.core.rmem_max; a smaller one still works.
	receiveBuffer = 4 << 20
	batchSize     = 16   // datagrams per recvmmsg
	datagramSize  = 8192 // ice's receive MTU
	controlSize   = 64   // room for one SCM_TIMESTAMPNS
)

// gate is opened once per turn of the clock: it tells the reader of each socket that has
// datagrams waiting, and the others sleep on.
//
// It also batches sends: between hold and release (a video frame's packets) the sockets
// queue what pion writes, and release sends each socket's queue with UDP GSO: a run of
// equal-size datagrams (and a shorter last one) in one sendmsg with UDP_SEGMENT, which
// the kernel takes through its stack once and splits at the receiving socket, so the
// server still receives one datagram per packet. A kernel without it (the first failing
// sendmsg) gets them one by one.
type gate struct {
	mu      sync.Mutex
	epoll   int // an epoll instance of our own, outside Go's poller, never waited on
	conns   map[int32]*turnConn
	events  []syscall.EpollEvent
	holding bool
	queued  []*turnConn
	noGSO   bool
}

// hold starts queueing what the sockets send; release sends it.
func (g *gate) hold() {
	g.mu.Lock()
	g.holding = true
	g.mu.Unlock()
}

func (g *gate) release() {
	g.mu.Lock()
	g.holding = false
	queued := g.queued
	g.queued = g.queued[:0]
	noGSO := g.noGSO
	g.mu.Unlock()
	for _, c := range queued {
		if !c.sendQueue(!noGSO) {
			g.mu.Lock()
			g.noGSO = true
			g.mu.Unlock()
		}
	}
}

// queue keeps b for release if the gate is held.
func (g *gate) queue(c *turnConn, b []byte, to *net.UDPAddr) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.holding {
		return false
	}
	if len(c.queue) > 0 && c.queueTo != to {
		return false // one destination per queue; this one goes now
	}
	if len(c.queue) == 0 {
		c.queueTo = to
		g.queued = append(g.queued, c)
	}
	c.queue = append(c.queue, b...)
	c.sizes = append(c.sizes, len(b))
	return true
}

func newGate() (*gate, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return &gate{epoll: fd, conns: map[int32]*turnConn{}, events: make([]syscall.EpollEvent, 256)}, nil
}

// watch adds c's socket to the sockets the gate looks at each turn.
func (g *gate) watch(c *turnConn) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.conns[int32(c.fd)] = c
	event := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(c.fd)}
	return syscall.EpollCtl(g.epoll, syscall.EPOLL_CTL_ADD, c.fd, &event)
}

func (g *gate) forget(c *turnConn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	_ = syscall.EpollCtl(g.epoll, syscall.EPOLL_CTL_DEL, c.fd, nil)
	delete(g.conns, int32(c.fd))
}

// open tells the reader of every socket that has datagrams waiting (one epoll_wait that
// does not block, level-triggered: a socket not yet emptied is told again next turn).
func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	n, err := syscall.EpollWait(g.epoll, g.events, 0)
	if err != nil {
		return // EINTR: next turn
	}
	for _, event := range g.events[:n] {
		if c := g.conns[event.Fd]; c != nil {
			select {
			case c.ready <- struct{}{}:
			default: // already told
			}
		}
	}
}

// arrivals holds the kernel's receive time of recent RTP packets that end a frame (marker
// bit set), by SSRC and sequence number, read from the clear RTP header of SRTP. It is a
// small table that newer packets overwrite: a frame is looked up within a turn or two.
type arrivals struct {
	mu    sync.Mutex
	slots [1 << 12]struct {
		key uint64
		ns  int64
	}
}

func arrivalKey(ssrc uint32, seq uint16) uint64 { return uint64(ssrc)<<16 | uint64(seq) }

func (a *arrivals) slot(key uint64) int {
	return int((key * 0x9E3779B97F4A7C15) >> (64 - 12))
}

func (a *arrivals) put(ssrc uint32, seq uint16, ns int64) {
	key := arrivalKey(ssrc, seq)
	a.mu.Lock()
	s := &a.slots[a.slot(key)]
	s.key, s.ns = key, ns
	a.mu.Unlock()
}

// at is when the packet arrived, or now if it is no longer (or never was) in the table.
func (a *arrivals) at(ssrc uint32, seq uint16) time.Time {
	key := arrivalKey(ssrc, seq)
	a.mu.Lock()
	s := a.slots[a.slot(key)]
	a.mu.Unlock()
	if s.key != key || s.ns == 0 {
		return time.Now()
	}
	return time.Unix(0, s.ns)
}

// turnNet is the standard network whose UDP sockets are read in the clock's turns.
type turnNet struct {
	*stdnet.Net
	gate     *gate
	arrivals *arrivals
}

func newNet(g *gate, a *arrivals) (transport.Net, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, err
	}
	return turnNet{n, g, a}, nil
}

func (n turnNet) ListenUDP(network string, local *net.UDPAddr) (transport.UDPConn, error) {
	ip := net.IPv4zero
	if local != nil && local.IP != nil {
		ip = local.IP
	}
	if network == "udp6" || ip.To4() == nil || ip.IsMulticast() {
		return n.Net.ListenUDP(network, local) // not for media: the poller is fine
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, receiveBuffer)
	bind := &syscall.SockaddrInet4{}
	copy(bind.Addr[:], ip.To4())
	if local != nil {
		bind.Port = local.Port
	}
	if err == nil {
		err = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	}
	if err == nil {
		err = syscall.Bind(fd, bind)
	}
	var bound syscall.Sockaddr
	if err == nil {
		bound, err = syscall.Getsockname(fd)
	}
	if err != nil {
		_ = syscall.Close(fd)
		return nil, err
	}
	c := &turnConn{fd: fd, gate: n.gate, arrivals: n.arrivals, closing: make(chan struct{}),
		ready: make(chan struct{}, 1), local: &net.UDPAddr{IP: ip, Port: bound.(*syscall.SockaddrInet4).Port}}
	if err := n.gate.watch(c); err != nil {
		_ = syscall.Close(fd)
		return nil, err
	}
	for i := range c.msgs {
		c.msgs[i].hdr.Name = (*byte)(unsafe.Pointer(&c.names[i]))
		c.msgs[i].hdr.Iov = &c.iovs[i]
		c.msgs[i].hdr.Iovlen = 1
		c.msgs[i].hdr.Control = &c.controls[i][0]
		c.iovs[i].Base = &c.bufs[i][0]
		c.iovs[i].SetLen(datagramSize)
	}
	return c, nil
}

type mmsghdr struct {
	hdr syscall.Msghdr
	len uint32
	_   [4]byte
}

// turnConn is one non-blocking UDP socket outside Go's poller, read in the clock's turns.
type turnConn struct {
	fd       int
	local    *net.UDPAddr
	gate     *gate
	arrivals *arrivals
	lock     sync.RWMutex // read-held around each system call, write-held to close
	closed   bool
	closing  chan struct{}
	ready    chan struct{} // the gate found datagrams waiting

	// What the reader took in its last recvmmsg, handed out one at a time.
	msgs     [batchSize]mmsghdr
	iovs     [batchSize]syscall.Iovec
	names    [batchSize]syscall.RawSockaddrInet4
	controls [batchSize][controlSize]byte
	bufs     [batchSize][datagramSize]byte
	taken    int
	next     int
	drained  bool         // the last recvmmsg found fewer datagrams than it could take
	from     *net.UDPAddr // the last sender, reused while it does not change

	writeMu sync.Mutex
	to      *net.UDPAddr // the last destination and its socket address
	toRaw   syscall.RawSockaddrInet4

	// What the gate holds (guarded by the gate's lock while held): datagrams end to end.
	queue   []byte
	sizes   []int
	queueTo *net.UDPAddr
	control [24]byte // one UDP_SEGMENT control message
}

var errUnsupported = errors.New("loadgen sockets: not supported")

func (c *turnConn) receive() (int, error) {
	c.lock.RLock()
	defer c.lock.RUnlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	for i := range c.msgs {
		c.msgs[i].hdr.Namelen = syscall.SizeofSockaddrInet4
		c.msgs[i].hdr.SetControllen(controlSize)
		c.msgs[i].hdr.Flags = 0
	}
	n, _, errno := syscall.RawSyscall6(syscall.SYS_RECVMMSG, uintptr(c.fd),
		uintptr(unsafe.Pointer(&c.msgs[0])), batchSize, syscall.MSG_DONTWAIT, 0, 0)
	if errno == syscall.EAGAIN || errno == syscall.EINTR {
		return 0, nil
	} else if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

func (c *turnConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for c.next >= c.taken {
		// A batch that did not fill up emptied the socket: wait for the gate to find more
		// rather than ask the kernel again only to hear EAGAIN.
		if c.drained {
			select {
			case <-c.ready:
			case <-c.closing:
				return 0, nil, net.ErrClosed
			}
		}
		n, err := c.receive()
		if err != nil {
			return 0, nil, err
		}
		c.taken, c.next, c.drained = n, 0, n < batchSize
	}
	i := c.next
	c.next++
	m := &c.msgs[i]
	n := copy(b, c.bufs[i][:m.len])
	name := &c.names[i]
	port := int(name.Port>>8 | name.Port<<8)
	if c.from == nil || c.from.Port != port || !c.from.IP.Equal(net.IP(name.Addr[:])) {
		c.from = &net.UDPAddr{IP: net.IPv4(name.Addr[0], name.Addr[1], name.Addr[2], name.Addr[3]), Port: port}
	}
	// An RTP packet ending a frame: version 2, marker bit, a payload type outside RTCP's.
	if n >= 12 && b[0]>>6 == 2 && b[1]&0x80 != 0 && (b[1]&0x7f < 64 || b[1]&0x7f > 95) &&
		m.hdr.Controllen >= 32 {
		control := c.controls[i][:]
		level, kind := int32(binary.LittleEndian.Uint32(control[8:])), int32(binary.LittleEndian.Uint32(control[12:]))
		if level == syscall.SOL_SOCKET && kind == syscall.SCM_TIMESTAMPNS {
			sec, nsec := int64(binary.LittleEndian.Uint64(control[16:])), int64(binary.LittleEndian.Uint64(control[24:]))
			c.arrivals.put(binary.BigEndian.Uint32(b[8:]), binary.BigEndian.Uint16(b[2:]), sec*1e9+nsec)
		}
	}
	return n, c.from, nil
}

func (c *turnConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	to, ok := addr.(*net.UDPAddr)
	if !ok || to.IP.To4() == nil {
		return 0, errUnsupported
	}
	if c.gate.queue(c, b, to) {
		return len(b), nil
	}
	c.lock.RLock()
	defer c.lock.RUnlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	return c.send(b, to, 0)
}

// send sends b to to, in segments of segment bytes if segment > 0 (UDP GSO). The caller
// holds c.lock for reading and c.writeMu.
func (c *turnConn) send(b []byte, to *net.UDPAddr, segment int) (int, error) {
	if c.to != to {
		c.to = to
		c.toRaw = syscall.RawSockaddrInet4{Family: syscall.AF_INET, Port: uint16(to.Port>>8) | uint16(to.Port&0xff)<<8}
		copy(c.toRaw.Addr[:], to.IP.To4())
	}
	if len(b) == 0 {
		return 0, nil
	}
	var msg syscall.Msghdr
	var iov syscall.Iovec
	if segment > 0 {
		iov.Base = &b[0]
		iov.SetLen(len(b))
		msg.Name = (*byte)(unsafe.Pointer(&c.toRaw))
		msg.Namelen = syscall.SizeofSockaddrInet4
		msg.Iov = &iov
		msg.Iovlen = 1
		binary.LittleEndian.PutUint64(c.control[0:], 16+2) // cmsg_len
		binary.LittleEndian.PutUint32(c.control[8:], solUDP)
		binary.LittleEndian.PutUint32(c.control[12:], udpSegment)
		binary.LittleEndian.PutUint16(c.control[16:], uint16(segment))
		msg.Control = &c.control[0]
		msg.SetControllen(len(c.control))
	}
	// The socket never blocks; a full send buffer (rare on loopback) is waited out briefly.
	for attempt := 0; ; attempt++ {
		var errno syscall.Errno
		if segment > 0 {
			_, _, errno = syscall.RawSyscall(syscall.SYS_SENDMSG, uintptr(c.fd), uintptr(unsafe.Pointer(&msg)), 0)
		} else {
			_, _, errno = syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(c.fd), uintptr(unsafe.Pointer(&b[0])),
				uintptr(len(b)), 0, uintptr(unsafe.Pointer(&c.toRaw)), syscall.SizeofSockaddrInet4)
		}
		switch {
		case errno == 0:
			return len(b), nil
		case (errno == syscall.EAGAIN || errno == syscall.ENOBUFS) && attempt < 100:
			time.Sleep(100 * time.Microsecond)
		case errno == syscall.EINTR:
		default:
			return 0, errno
		}
	}
}

const (
	solUDP      = 17  // SOL_UDP
	udpSegment  = 103 // UDP_SEGMENT
	maxSegments = 64  // what every kernel with UDP GSO takes in one send
	maxGSOBytes = 60000
)

// sendQueue sends what the gate held, runs of equal-size datagrams (the last of a run may
// be shorter) each in one GSO send if gso; false if the kernel refused GSO (the run was
// sent one by one then).
func (c *turnConn) sendQueue(gso bool) bool {
	c.lock.RLock()
	defer c.lock.RUnlock()
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	defer func() { c.queue, c.sizes = c.queue[:0], c.sizes[:0] }()
	if c.closed {
		return true
	}
	ok := true
	for i, offset := 0, 0; i < len(c.sizes); {
		size, j, total := c.sizes[i], i+1, c.sizes[i]
		for j < len(c.sizes) && j-i < maxSegments && total+c.sizes[j] <= maxGSOBytes && c.sizes[j] <= size {
			total += c.sizes[j]
			j++
			if c.sizes[j-1] < size {
				break // a shorter datagram ends the run
			}
		}
		run := c.queue[offset : offset+total]
		sent := false
		if gso && j-i > 1 {
			_, err := c.send(run, c.queueTo, size)
			if sent = err == nil; !sent {
				gso, ok = false, false
			}
		}
		for k, at := i, offset; !sent && k < j; k++ {
			_, _ = c.send(c.queue[at:at+c.sizes[k]], c.queueTo, 0)
			at += c.sizes[k]
		}
		i, offset = j, offset+total
	}
	return ok
}

func (c *turnConn) Close() error {
	c.lock.Lock()
	defer c.lock.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	close(c.closing)
	c.gate.forget(c)
	return syscall.Close(c.fd)
}

func (c *turnConn) LocalAddr() net.Addr  { return c.local }
func (c *turnConn) RemoteAddr() net.Addr { return nil }

// Deadlines: pion sets one only to unblock a reader before closing, which Close does.
func (c *turnConn) SetDeadline(time.Time) error      { return nil }
func (c *turnConn) SetReadDeadline(time.Time) error  { return nil }
func (c *turnConn) SetWriteDeadline(time.Time) error { return nil }
func (c *turnConn) SetReadBuffer(bytes int) error {
	return syscall.SetsockoptInt(c.fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, bytes)
}

func (c *turnConn) SetWriteBuffer(bytes int) error {
	return syscall.SetsockoptInt(c.fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF, bytes)
}

func (c *turnConn) Read(b []byte) (int, error) {
	n, _, err := c.ReadFrom(b)
	return n, err
}

func (c *turnConn) ReadFromUDP(b []byte) (int, *net.UDPAddr, error) {
	n, addr, err := c.ReadFrom(b)
	if addr == nil {
		return n, nil, err
	}
	return n, addr.(*net.UDPAddr), err
}

func (c *turnConn) ReadMsgUDP(_, _ []byte) (int, int, int, *net.UDPAddr, error) {
	return 0, 0, 0, nil, errUnsupported
}
func (c *turnConn) Write([]byte) (int, error) { return 0, errUnsupported }
func (c *turnConn) WriteToUDP(b []byte, addr *net.UDPAddr) (int, error) {
	return c.WriteTo(b, addr)
}

func (c *turnConn) WriteMsgUDP(_, _ []byte, _ *net.UDPAddr) (int, int, error) {
	return 0, 0, errUnsupported
}
