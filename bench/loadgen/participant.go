package main

import (
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v3"
)

var seatIndex = map[string]uint8{"applicant": 0, "cbsa": 1, "cbp": 2}

const (
	rtpMTU = 1200 // pion's and browsers' outbound RTP packet size
	// vp8Fragment is how much of a frame one packet carries after the 12-byte RTP header
	// and the 4-byte VP8 payload descriptor (X, then I with a 15-bit picture id).
	vp8Fragment = rtpMTU - 12 - 4
)

// seatSpec is one participant as the driver signed it in.
type seatSpec struct {
	Room        int    `json:"room"`
	Seat        string `json:"seat"`
	InterviewID string `json:"interview_id"`
	Cookie      string `json:"cookie"`     // "nexus_session=…"
	LocalAddr   string `json:"local_addr"` // the address it signed in from, "" for any
}

// inbound is what one participant receives from one other seat, per kind.
type inbound struct {
	mu        sync.Mutex
	publisher string
	kind      string
	firstAt   time.Time // first frame (video: one whose marker checked out)
	frames    int64     // video: frames with a valid marker; audio: packets
	wrong     int64     // frames whose marker named another room or seat
	broken    int64     // frames that arrived with packets missing
	packets   int64
	highest   int64 // extended highest sequence number
	base      int64 // first sequence number seen, -1 before
	maxCount  int64 // highest marker counter seen
	delaysUs  []int64
	recording bool      // keep delays and gaps (the measuring window)
	lastAt    time.Time // the last frame counted
	maxGap    time.Duration
}

// counted notes a frame (audio: a packet) that counts, arrived at now; in.mu is held.
func (in *inbound) counted(now time.Time) {
	if in.frames == 0 {
		in.firstAt = now
	}
	if in.recording && !in.lastAt.IsZero() && now.Sub(in.lastAt) > in.maxGap {
		in.maxGap = now.Sub(in.lastAt)
	}
	in.lastAt = now
	in.frames++
}

type snapshot struct {
	frames, packets, expected, maxCount int64
}

func (in *inbound) snap() snapshot {
	in.mu.Lock()
	defer in.mu.Unlock()
	return snapshot{in.frames, in.packets, in.highest - in.base + 1, in.maxCount}
}

type participant struct {
	spec   seatSpec
	server string
	target string // config.Target
	// reencoded: config.Reencoded; frames are counted by the RTP marker bit, unchecked.
	reencoded bool
	clip      *clip
	clock     *clock
	// arrivals: when the kernel received the packets that end frames (net.go).
	arrivals *arrivals
	pc       *webrtc.PeerConnection
	ws       *websocket.Conn
	wsMu     sync.Mutex
	joinAt   time.Time
	started  chan struct{} // closed when the connection is up and media flows
	stop     chan struct{}
	pli      atomic.Bool
	plis     atomic.Int64
	nacks    atomic.Int64
	mu       sync.Mutex
	in       map[string]*inbound // "cbsa/video" → what comes from that seat
	errors   []string
}

func (p *participant) send(message map[string]any) error {
	message["v"] = 1
	p.wsMu.Lock()
	defer p.wsMu.Unlock()
	return p.ws.WriteJSON(message)
}

func (p *participant) fail(format string, args ...any) {
	p.mu.Lock()
	p.errors = append(p.errors, fmt.Sprintf(format, args...))
	p.mu.Unlock()
}

// run joins as a browser does and keeps the call until stop is closed.
func (p *participant) run(api *webrtc.API, done func()) {
	defer done()
	join := p.join
	if p.target == "janus" {
		join = p.joinJanus
	}
	if err := join(api); err != nil {
		p.fail("%s room %d: %v", p.spec.Seat, p.spec.Room, err)
	}
}

func (p *participant) join(api *webrtc.API) error {
	dialer := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	if p.spec.LocalAddr != "" {
		local := &net.TCPAddr{IP: net.ParseIP(p.spec.LocalAddr)}
		dialer.NetDial = func(network, addr string) (net.Conn, error) {
			return (&net.Dialer{LocalAddr: local}).Dial(network, addr)
		}
	}
	header := http.Header{"Cookie": {p.spec.Cookie}, "Origin": {p.server}}
	ws, _, err := dialer.Dial("ws"+strings.TrimPrefix(p.server, "http")+"/ws", header)
	if err != nil {
		return fmt.Errorf("websocket: %w", err)
	}
	p.ws = ws
	messages := make(chan map[string]any, 16)
	go func() {
		defer close(messages)
		for {
			var message map[string]any
			if err := ws.ReadJSON(&message); err != nil {
				return
			}
			if message["type"] == "error" {
				p.fail("%s room %d: server error %v: %v", p.spec.Seat, p.spec.Room, message["code"], message["message"])
			}
			messages <- message
		}
	}()
	expect := func(kind string) (map[string]any, error) {
		timeout := time.After(20 * time.Second)
		for {
			select {
			case message, ok := <-messages:
				if !ok {
					return nil, fmt.Errorf("socket closed waiting for %s", kind)
				}
				if message["type"] == kind {
					return message, nil
				}
			case <-timeout:
				return nil, fmt.Errorf("no %s within 20 s", kind)
			}
		}
	}

	p.joinAt = time.Now()
	if err := p.send(map[string]any{"type": "join", "interview_id": p.spec.InterviewID}); err != nil {
		return err
	}
	if _, err := expect("joined"); err != nil {
		return err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle})
	if err != nil {
		return err
	}
	p.pc = pc
	startMedia, err := p.addMedia(pc)
	if err != nil {
		return err
	}
	for i := 0; i < 2; i++ {
		for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
			if _, err := pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
				return err
			}
		}
	}
	// The server names the publishing seat in each slot's stream id.
	pc.OnTrack(func(track *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { p.receive(track, track.StreamID()) })
	var connectedOnce sync.Once
	pc.OnConnectionStateChange(func(state webrtc.PeerConnectionState) {
		switch state {
		case webrtc.PeerConnectionStateConnected:
			connectedOnce.Do(func() {
				close(p.started)
				startMedia()
			})
		case webrtc.PeerConnectionStateFailed:
			p.fail("%s room %d: connection failed", p.spec.Seat, p.spec.Room)
		}
	})
	// Trickle as browsers do, but only once the offer is out: the server takes
	// candidates for the connection its offer made.
	var trickle sync.Mutex
	var pending []webrtc.ICECandidateInit
	offered := false
	sendCandidate := func(c webrtc.ICECandidateInit) {
		message := map[string]any{"type": "candidate", "candidate": c.Candidate}
		if c.SDPMid != nil {
			message["sdp_mid"] = *c.SDPMid
		}
		if c.SDPMLineIndex != nil {
			message["sdp_mline_index"] = *c.SDPMLineIndex
		}
		if err := p.send(message); err != nil {
			p.fail("%s room %d: candidate: %v", p.spec.Seat, p.spec.Room, err)
		}
	}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return
		}
		trickle.Lock()
		defer trickle.Unlock()
		if offered {
			sendCandidate(c.ToJSON())
		} else {
			pending = append(pending, c.ToJSON())
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return err
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		return err
	}
	if err := p.send(map[string]any{"type": "offer", "sdp": pc.LocalDescription().SDP}); err != nil {
		return err
	}
	trickle.Lock()
	offered = true
	for _, c := range pending {
		sendCandidate(c)
	}
	trickle.Unlock()
	answer, err := expect("answer")
	if err != nil {
		return err
	}
	sdp, _ := answer["sdp"].(string)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		return err
	}
	go func() {
		for range messages { // keep reading: pings, peer events
		}
	}()
	return nil
}

// close leaves the seat for good and hangs up.
func (p *participant) close() {
	close(p.stop)
	if p.ws != nil {
		_ = p.send(map[string]any{"type": "leave"})
	}
	if p.pc != nil {
		_ = p.pc.Close()
	}
	if p.ws != nil {
		_ = p.ws.Close()
	}
}

// addMedia adds this participant's sendonly audio and video to pc; start (once the
// connection is up) begins sending them on the shared clock.
func (p *participant) addMedia(pc *webrtc.PeerConnection) (start func(), err error) {
	video, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", p.spec.Seat)
	if err != nil {
		return nil, err
	}
	audio, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "audio", p.spec.Seat)
	if err != nil {
		return nil, err
	}
	for _, track := range []*webrtc.TrackLocalStaticRTP{audio, video} {
		t, err := pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return nil, err
		}
		go p.readRTCP(t.Sender())
	}
	return func() {
		p.clock.add(videoInterval, p.videoSender(video))
		p.clock.add(audioInterval, p.audioSender(audio))
	}, nil
}

func (p *participant) readRTCP(sender *webrtc.RTPSender) {
	// Reading is what runs the NACK responder and the report interceptors.
	for {
		packets, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, packet := range packets {
			switch packet.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				p.pli.Store(true)
				p.plis.Add(1)
			case *rtcp.TransportLayerNack:
				p.nacks.Add(1)
			}
		}
	}
}

// videoSender replays the clip at 30 fps, each frame marked with this seat and a counter;
// a keyframe request restarts the clip at its first (key)frame. It returns false once
// the participant has left. It packetizes as a browser does (RFC 7741, a 15-bit picture
// id in every packet, the RTP marker on a frame's last packet) into buffers it reuses:
// pion's sample writer allocates every packet of every frame.
func (p *participant) videoSender(track *webrtc.TrackLocalStaticRTP) func() bool {
	frame := make([]byte, 0, 256*1024)
	payload := make([]byte, 0, rtpMTU)
	packet := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(rand.Uint32()), Timestamp: rand.Uint32()}}
	pictureID := uint16(rand.Uint32()) & 0x7fff
	index, counter := 0, uint32(0)
	return func() bool {
		if p.left() {
			return false
		}
		if p.pli.Swap(false) {
			index = 0
		}
		counter++
		m := marker{uint16(p.spec.Room), seatIndex[p.spec.Seat], counter, time.Now().UnixMicro()}
		frame = m.appendTo(append(frame[:0], p.clip.video[index]...))
		index = (index + 1) % len(p.clip.video)
		p.clock.gate.hold() // the frame's packets leave together (net.go)
		defer p.clock.gate.release()
		for start := 0; start < len(frame); start += vp8Fragment {
			end := start + vp8Fragment
			if end > len(frame) {
				end = len(frame)
			}
			first := byte(0x80) // X: the extension byte follows
			if start == 0 {
				first |= 0x10 // S: the frame (its first partition) starts here
			}
			payload = append(payload[:0], first, 0x80, 0x80|byte(pictureID>>8), byte(pictureID))
			packet.Payload = append(payload, frame[start:end]...)
			packet.Marker = end == len(frame)
			if track.WriteRTP(&packet) != nil {
				return false
			}
			packet.SequenceNumber++
		}
		packet.Timestamp += 90000 / 30
		pictureID = (pictureID + 1) & 0x7fff
		return true
	}
}

func (p *participant) audioSender(track *webrtc.TrackLocalStaticRTP) func() bool {
	packet := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(rand.Uint32()), Timestamp: rand.Uint32()}}
	index := 0
	return func() bool {
		if p.left() {
			return false
		}
		packet.Payload = p.clip.audio[index]
		index = (index + 1) % len(p.clip.audio)
		if track.WriteRTP(&packet) != nil {
			return false
		}
		packet.SequenceNumber++
		packet.Timestamp += 48000 / 50
		return true
	}
}

func (p *participant) left() bool {
	select {
	case <-p.stop:
		return true
	default:
		return false
	}
}

// receive counts one remote track by content: a video frame counts when the marker at its
// end names publisher, the seat the server says it comes from, and this room. From a
// server that encodes again (reencoded) a frame counts when all its packets came and the
// RTP marker bit ends it: nothing of ours survives re-encoding to check, or to time.
func (p *participant) receive(track *webrtc.TrackRemote, publisher string) {
	kind := track.Kind().String()
	in := &inbound{publisher: publisher, kind: kind, base: -1}
	p.mu.Lock()
	p.in[in.publisher+"/"+kind] = in
	p.mu.Unlock()
	want, known := seatIndex[in.publisher]
	if !known {
		p.fail("%s room %d: a %s track from unknown stream %q", p.spec.Seat, p.spec.Room, kind, in.publisher)
	}
	buf := make([]byte, 1500)
	var packet rtp.Packet
	var vp8 codecs.VP8Packet
	var tail [markerSize]byte // the last markerSize bytes of the frame so far
	filled := 0
	var frameStart uint16 // sequence number of the current frame's first packet
	framePackets, started := 0, false
	var cycles int64
	var last uint16
	for {
		n, _, err := track.Read(buf)
		if err != nil {
			return
		}
		if packet.Unmarshal(buf[:n]) != nil {
			continue
		}
		now := time.Now()
		in.mu.Lock()
		in.packets++
		seq := packet.SequenceNumber
		if in.base < 0 {
			in.base, last = int64(seq), seq
		} else if diff := seq - last; diff < 0x8000 && diff != 0 {
			if seq < last {
				cycles += 1 << 16
			}
			last = seq
		}
		if ext := cycles + int64(last); ext > in.highest {
			in.highest = ext
		}
		if kind == "audio" {
			in.counted(now)
			in.mu.Unlock()
			continue
		}
		in.mu.Unlock()
		data, err := vp8.Unmarshal(packet.Payload)
		if err != nil {
			continue
		}
		if vp8.S == 1 && vp8.PID == 0 {
			filled, frameStart, framePackets, started = 0, seq, 0, true
		}
		framePackets++
		if len(data) >= markerSize {
			copy(tail[:], data[len(data)-markerSize:])
			filled = markerSize
		} else {
			keep := markerSize - len(data)
			copy(tail[:keep], tail[markerSize-keep:])
			copy(tail[keep:], data)
			filled += len(data)
		}
		if !packet.Marker {
			continue
		}
		whole := started && int(seq-frameStart)+1 == framePackets
		started = false
		if p.reencoded {
			in.mu.Lock()
			if !whole {
				in.broken++
			} else {
				in.counted(now)
			}
			in.mu.Unlock()
			continue
		}
		m, ok := readMarker(tail[:])
		if filled < markerSize || !ok {
			continue
		}
		in.mu.Lock()
		if !whole {
			in.broken++ // its last packet came but not all the others
		} else if m.room != uint16(p.spec.Room) || m.seat != want {
			in.wrong++
		} else {
			in.counted(now)
			if int64(m.counter) > in.maxCount {
				in.maxCount = int64(m.counter)
			}
			if in.recording {
				arrived := p.arrivals.at(packet.SSRC, seq)
				in.delaysUs = append(in.delaysUs, arrived.UnixMicro()-m.sentUs)
			}
		}
		in.mu.Unlock()
	}
}

func (p *participant) inbounds() []*inbound {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*inbound, 0, len(p.in))
	for _, in := range p.in {
		out = append(out, in)
	}
	return out
}
