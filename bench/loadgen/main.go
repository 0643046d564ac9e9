// Command loadgen is a native load generator for the interview server: N synthetic
// three-party interviews whose participants join through the real server exactly as
// browsers do, on pion WebRTC.
//
// A driver (bench/native_load.py) starts the server, signs the applicants and officers
// in (applicant link, date of birth, consent; officers with password and TOTP from their
// own loopback addresses), seats them in their interviews and hands each participant's
// session cookie to this program as JSON on standard input:
//
//	{"server": "http://127.0.0.1:8080", "seconds": 20, "warmup": 3,
//	 "participants": [{"room": 0, "seat": "cbsa", "interview_id": "…",
//	                   "cookie": "nexus_session=…", "local_addr": "127.0.0.2"}, …]}
//
// Each participant opens GET /ws (from its own address), sends `join`, and once `joined`
// offers one sendonly audio and one sendonly video section and, per kind, one recvonly
// section for each other seat (max-bundle, trickled candidates), as docs/signalling.md
// describes. Once connected it sends a 640x480 30 fps VP8 clip (~800 kbps, encoded once
// by Debian's ffmpeg into -clip-dir) and 20 ms Opus packets, every track paced by one
// 5 ms clock (clock.go), packetized as a browser does (RFC 7741 with a 15-bit picture
// id). Each video frame carries a marker after the VP8 data (room,
// seat, counter, send time); a picture loss indication restarts the clip at its first
// keyframe. What comes back is counted by content without decoding: a frame counts when
// all its packets came and its marker names the seat the server's stream id names. With
// "reencoded": true (a server that decodes and encodes again, as stock aiortc MediaRelay
// does) no marker survives: a frame counts when all its packets came and the RTP marker
// bit ends it, and delay and frames lost are not known (-1).
//
// With "target": "janus" the same participants join Janus's VideoRoom instead, over its
// HTTP API at "server" (janus.go; bench/janus_server.py starts Janus and drives this).
//
// It prints, per forwarded track, fps (audio: packets per second) over the measuring
// window, join-to-first-frame, frames lost (marker counter gaps), packet loss, frames
// with a wrong marker or missing packets, the server-added delay (send to receive on
// the same clock), the longest wait for a frame in the window (max gap), the PLIs and
// NACKs the publishers got, and its own CPU seconds
// (getrusage) per second and per participant. -json also writes these as JSON;
// -cpuprofile writes a CPU profile for `go tool pprof`. It never fails on figures: the
// exit status says only whether every forwarded track arrived.
//
// What it costs is mostly waking up, so it wakes as little as it can (clock.go, net.go):
// one thread, asleep only in the clock between turns; every socket read once a turn and
// only if something came (the delays use the kernel's receive time, not the read's); a
// video frame's packets sent in one system call (UDP GSO; the server still receives one
// datagram per packet). RTCP as browsers send it: NACK and PLI answered and counted,
// sender reports every second, receiver reports every 5 s.
//
// Build (Debian's Go and pion, no module downloads): make loadgen.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/pion/ice/v2"
	"github.com/pion/interceptor"
	rtcpreport "github.com/pion/interceptor/pkg/report"
	"github.com/pion/webrtc/v3"
)

type config struct {
	// Target is what the participants join: "interview" (this project's server, the
	// default) or "janus" (Janus's VideoRoom at Server, its HTTP API).
	Target string `json:"target"`
	// Reencoded: the server decodes and encodes again (stock aiortc MediaRelay), so
	// frames carry no marker to check; they are counted by the RTP marker bit.
	Reencoded    bool       `json:"reencoded"`
	Server       string     `json:"server"`
	Seconds      float64    `json:"seconds"`
	Warmup       float64    `json:"warmup"`
	Participants []seatSpec `json:"participants"`
}

type trackResult struct {
	Room         int     `json:"room"`
	Subscriber   string  `json:"subscriber"`
	Publisher    string  `json:"publisher"`
	Kind         string  `json:"kind"`
	FPS          float64 `json:"fps"`
	FirstFrameMs float64 `json:"first_frame_ms"`
	FramesLost   float64 `json:"frames_lost"` // fraction of the publisher's frames in the window; -1: unknown (re-encoded)
	PacketLoss   float64 `json:"packet_loss"` // fraction of RTP packets
	Wrong        int64   `json:"wrong"`
	Broken       int64   `json:"broken"`
	DelayP50Ms   float64 `json:"delay_p50_ms"`
	DelayP95Ms   float64 `json:"delay_p95_ms"`
	// MaxGapMs is the longest wait for a frame (audio: a packet) in the window, counting
	// the wait from its start and until its end.
	MaxGapMs float64 `json:"max_gap_ms"`
}

type report struct {
	Participants      int           `json:"participants"`
	Seconds           float64       `json:"seconds"`
	CPUSeconds        float64       `json:"cpu_seconds"`
	CPUPerSecond      float64       `json:"cpu_per_second"`
	CPUPerParticipant float64       `json:"cpu_per_second_per_participant"`
	PLIs              int64         `json:"plis"`
	NACKs             int64         `json:"nacks"`
	Tracks            []trackResult `json:"tracks"`
	Errors            []string      `json:"errors"`
}

func cpuSeconds() float64 {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano()).Seconds()
}

func newAPI(g *gate, a *arrivals) (*webrtc.API, error) {
	engine := &webrtc.MediaEngine{}
	video := []webrtc.RTCPFeedback{{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}}
	if err := engine.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: video},
		PayloadType:        96,
	}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, err
	}
	if err := engine.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"},
		PayloadType:        111,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	// NACK (with PLI feedback) and RTCP reports as a browser has them; no transport-cc,
	// which the server does not negotiate.
	registry := &interceptor.Registry{}
	if err := webrtc.ConfigureNack(engine, registry); err != nil {
		return nil, err
	}
	// Receiver reports every 5 s, as libwebrtc sends them for audio (sender reports stay
	// at every second): a report is a datagram of its own per received stream.
	receiverReports, err := rtcpreport.NewReceiverInterceptor(rtcpreport.ReceiverInterval(5 * time.Second))
	if err != nil {
		return nil, err
	}
	senderReports, err := rtcpreport.NewSenderInterceptor()
	if err != nil {
		return nil, err
	}
	registry.Add(receiverReports)
	registry.Add(senderReports)
	settings := webrtc.SettingEngine{}
	settings.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	// The server's candidates are addresses: no mDNS responder (a socket and a reader
	// per connection) is needed to resolve them.
	settings.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	network, err := newNet(g, a)
	if err != nil {
		return nil, err
	}
	settings.SetNet(network)
	return webrtc.NewAPI(webrtc.WithMediaEngine(engine), webrtc.WithInterceptorRegistry(registry),
		webrtc.WithSettingEngine(settings)), nil
}

func percentile(sorted []int64, fraction float64) float64 {
	if len(sorted) == 0 {
		return -1
	}
	return float64(sorted[int(fraction*float64(len(sorted)-1))]) / 1000
}

func main() {
	clipDir := flag.String("clip-dir", "build/loadgen", "where the encoded clip is kept")
	jsonOut := flag.String("json", "", "also write the report as JSON to this file")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	turn := flag.Duration("turn", pacerInterval, "how often the clock sends what is due and the sockets are read")
	flag.Parse()
	// One thread runs every goroutine: the work comes in bursts, once per turn of the
	// clock, and passing a packet from one of pion's goroutines to the next on the same
	// thread is a switch, where with two it is a futex wake-up of the other thread.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	// The heap is small (the clip and pion's buffers); collecting less often costs a
	// little memory and saves the collector's work per packet allocated.
	debug.SetGCPercent(400)
	rand.Seed(time.Now().UnixNano()) // each run's sequence numbers, timestamps, picture ids
	if *profile != "" {
		f, err := os.Create(*profile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen: -cpuprofile:", err)
			os.Exit(2)
		}
		defer pprof.StopCPUProfile()
	}
	var cfg config
	if err := json.NewDecoder(os.Stdin).Decode(&cfg); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: the configuration on standard input:", err)
		os.Exit(2)
	}
	ivf, ogg, err := prepareClip(*clipDir)
	if err == nil {
		var c *clip
		if c, err = loadClip(ivf, ogg); err == nil {
			err = run(cfg, c, *jsonOut, *turn)
		}
	}
	if err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(cfg config, c *clip, jsonOut string, turn time.Duration) error {
	turns, err := newGate()
	if err != nil {
		return err
	}
	senders, arrived := &clock{gate: turns}, &arrivals{}
	api, err := newAPI(senders.gate, arrived)
	if err != nil {
		return err
	}
	size := 0
	for _, frame := range c.video {
		size += len(frame)
	}
	fmt.Printf("clip: %d VP8 frames at %.0f kbps, %d Opus packets; %d participants\n",
		len(c.video), float64(size)*8/(float64(len(c.video))/30)/1000, len(c.audio), len(cfg.Participants))

	go senders.run(turn)
	participants := make([]*participant, len(cfg.Participants))
	var joining sync.WaitGroup
	for i, spec := range cfg.Participants {
		participants[i] = &participant{spec: spec, server: cfg.Server, target: cfg.Target, reencoded: cfg.Reencoded,
			clip: c, clock: senders, arrivals: arrived,
			started: make(chan struct{}), stop: make(chan struct{}), in: map[string]*inbound{}}
		joining.Add(1)
		go participants[i].run(api, joining.Done)
	}
	joining.Wait()
	deadline := time.After(30 * time.Second)
	everyone := true
	for _, p := range participants {
		select {
		case <-p.started:
		case <-deadline:
			everyone = false
		}
	}
	time.Sleep(time.Duration(cfg.Warmup * float64(time.Second)))

	type key struct {
		p  *participant
		in *inbound
	}
	var tracks []key
	for _, p := range participants {
		for _, in := range p.inbounds() {
			tracks = append(tracks, key{p, in})
		}
	}
	sort.Slice(tracks, func(i, j int) bool {
		a, b := tracks[i], tracks[j]
		if a.p.spec.Room != b.p.spec.Room {
			return a.p.spec.Room < b.p.spec.Room
		}
		if a.p.spec.Seat != b.p.spec.Seat {
			return a.p.spec.Seat < b.p.spec.Seat
		}
		return a.in.publisher+a.in.kind < b.in.publisher+b.in.kind
	})
	before := make([]snapshot, len(tracks))
	for i, t := range tracks {
		t.in.mu.Lock()
		t.in.recording = true
		t.in.mu.Unlock()
		before[i] = t.in.snap()
	}
	// A driver measuring the server over the same window watches for these two lines.
	fmt.Printf("measuring for %.0f s\n", cfg.Seconds)
	cpuBefore, start := cpuSeconds(), time.Now()
	time.Sleep(time.Duration(cfg.Seconds * float64(time.Second)))
	end := time.Now()
	cpu, elapsed := cpuSeconds()-cpuBefore, end.Sub(start).Seconds()
	fmt.Println("measured")
	rep := report{Participants: len(participants), Seconds: elapsed, CPUSeconds: cpu,
		CPUPerSecond: cpu / elapsed, CPUPerParticipant: cpu / elapsed / float64(len(participants))}
	for i, t := range tracks {
		after := t.in.snap()
		t.in.mu.Lock()
		t.in.recording = false
		delays := append([]int64(nil), t.in.delaysUs...)
		firstAt, wrong, broken := t.in.firstAt, t.in.wrong, t.in.broken
		gap := t.in.maxGap
		if t.in.lastAt.Before(start) {
			gap = end.Sub(start) // nothing came in the window
		} else if end.Sub(t.in.lastAt) > gap {
			gap = end.Sub(t.in.lastAt)
		}
		t.in.mu.Unlock()
		sort.Slice(delays, func(a, b int) bool { return delays[a] < delays[b] })
		r := trackResult{Room: t.p.spec.Room, Subscriber: t.p.spec.Seat, Publisher: t.in.publisher,
			Kind: t.in.kind, FPS: float64(after.frames-before[i].frames) / elapsed, Wrong: wrong, Broken: broken,
			FirstFrameMs: -1, DelayP50Ms: percentile(delays, 0.5), DelayP95Ms: percentile(delays, 0.95),
			MaxGapMs: float64(gap.Microseconds()) / 1000}
		if !firstAt.IsZero() {
			joined := t.p.joinAt
			for _, other := range participants {
				if other.spec.Room == t.p.spec.Room && other.spec.Seat == t.in.publisher && other.joinAt.After(joined) {
					joined = other.joinAt
				}
			}
			r.FirstFrameMs = float64(firstAt.Sub(joined).Microseconds()) / 1000
		}
		if t.in.kind == "video" && t.p.reencoded {
			r.FramesLost = -1 // no counter survives re-encoding
		} else if sent := after.maxCount - before[i].maxCount; sent > 0 && t.in.kind == "video" {
			r.FramesLost = 1 - float64(after.frames-before[i].frames)/float64(sent)
		}
		if expected := after.expected - before[i].expected; expected > 0 {
			r.PacketLoss = 1 - float64(after.packets-before[i].packets)/float64(expected)
		}
		rep.Tracks = append(rep.Tracks, r)
	}
	for _, p := range participants {
		rep.PLIs += p.plis.Load()
		rep.NACKs += p.nacks.Load()
	}
	for _, p := range participants {
		p.close()
	}
	for _, p := range participants {
		p.mu.Lock()
		rep.Errors = append(rep.Errors, p.errors...)
		p.mu.Unlock()
	}
	print(rep)
	if jsonOut != "" {
		data, _ := json.MarshalIndent(rep, "", " ")
		if err := os.WriteFile(jsonOut, data, 0o644); err != nil {
			return err
		}
	}
	expected := len(participants) * 4
	if !everyone || len(rep.Tracks) != expected {
		return fmt.Errorf("%d of %d forwarded tracks arrived (see the errors above)", len(rep.Tracks), expected)
	}
	return nil
}

func print(rep report) {
	fmt.Printf("%4s %-9s %-9s %-5s %6s %9s %7s %7s %6s %6s %12s %7s\n",
		"room", "receiver", "from", "kind", "fps", "first ms", "f.lost", "p.loss", "wrong", "broken", "delay p50/95", "max gap")
	for _, t := range rep.Tracks {
		fps := fmt.Sprintf("%6.1f", t.FPS)
		if t.Kind == "audio" {
			fps = fmt.Sprintf("%5.1fp", t.FPS) // packets per second
		}
		delay := "-" // audio and re-encoded video carry no marker
		if t.DelayP50Ms >= 0 {
			delay = fmt.Sprintf("%.1f/%.1fms", t.DelayP50Ms, t.DelayP95Ms)
		}
		lost := "-" // re-encoded: unknown
		if t.FramesLost >= 0 {
			lost = fmt.Sprintf("%.2f%%", 100*t.FramesLost)
		}
		fmt.Printf("%4d %-9s %-9s %-5s %6s %9.0f %7s %6.2f%% %6d %6d %12s %5.0fms\n",
			t.Room, t.Subscriber, t.Publisher, t.Kind, fps, t.FirstFrameMs, lost,
			100*t.PacketLoss, t.Wrong, t.Broken, delay, t.MaxGapMs)
	}
	fmt.Printf("publishers got %d PLIs and %d NACKs\n", rep.PLIs, rep.NACKs)
	fmt.Printf("loadgen CPU: %.2f s in %.1f s = %.3f CPU-s/s, %.4f per participant (%d participants)\n",
		rep.CPUSeconds, rep.Seconds, rep.CPUPerSecond, rep.CPUPerParticipant, rep.Participants)
	for _, e := range rep.Errors {
		fmt.Println("error:", e)
	}
}
