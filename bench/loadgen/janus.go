package main

// The janus target: each participant joins Janus's VideoRoom over its HTTP API as a
// browser running janus.js would, with one publisher handle (its audio and video) and one
// subscriber handle receiving the other two seats in one multistream PeerConnection.
// Janus forwards RTP without touching the payload, so frames are checked by their marker
// as for our server.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v3"
)

// janusRecordDirVariable names the folder where the rooms this generator creates record
// (Janus writes one .mjr file per published stream); unset or empty, they only forward.
const janusRecordDirVariable = "LOADGEN_JANUS_REC_DIR"

// janusReplyTimeout bounds each wait for Janus: an asynchronous request's event, the
// other seats' publishing.
const janusReplyTimeout = 20 * time.Second

// janusKeepalive is well inside Janus's default session timeout (60 s).
const janusKeepalive = 20 * time.Second

// janusVideoRoomRoomExists is the VideoRoom's error code for creating a room that exists:
// the three seats of a room race to create it and all but one get it.
const janusVideoRoomRoomExists = 427

type janusMessage struct {
	Janus       string `json:"janus"`
	Transaction string `json:"transaction"`
	Sender      uint64 `json:"sender"`
	Data        struct {
		ID uint64 `json:"id"`
	} `json:"data"`
	Error *struct {
		Code   int    `json:"code"`
		Reason string `json:"reason"`
	} `json:"error"`
	PluginData struct {
		Data json.RawMessage `json:"data"`
	} `json:"plugindata"`
	JSEP *janusJSEP `json:"jsep"`
}

type janusJSEP struct {
	Type string `json:"type"`
	SDP  string `json:"sdp"`
}

// videoRoomReply is what the generator reads of the VideoRoom plugin's replies and events.
type videoRoomReply struct {
	VideoRoom  string `json:"videoroom"`
	Exists     bool   `json:"exists"`
	ErrorCode  int    `json:"error_code"`
	Error      string `json:"error"`
	Publishers []struct {
		ID      uint64 `json:"id"`
		Display string `json:"display"`
	} `json:"publishers"`
	Streams []struct {
		Mid         string `json:"mid"`
		Type        string `json:"type"`
		FeedDisplay string `json:"feed_display"`
	} `json:"streams"`
}

type videoRoomError struct {
	code int
	text string
}

func (e *videoRoomError) Error() string { return fmt.Sprintf("videoroom error %d: %s", e.code, e.text) }

// janusSession is one Janus session over the HTTP API: requests are POSTed, and events
// come back on one long poll that hands each to the request waiting for its transaction
// or, unsolicited, to its handle's channel.
type janusSession struct {
	root    string // <server>/<session id>
	client  *http.Client
	ctx     context.Context // cancelled when the participant leaves
	next    atomic.Uint64
	mu      sync.Mutex
	waiting map[string]chan janusMessage
	events  map[uint64]chan janusMessage
	fail    func(format string, args ...any)
}

func (s *janusSession) post(path string, body map[string]any) (janusMessage, error) {
	transaction := strconv.FormatUint(s.next.Add(1), 10)
	body["transaction"] = transaction
	return s.send(path, body)
}

// send POSTs body (with its transaction) and returns Janus's immediate reply.
func (s *janusSession) send(path string, body map[string]any) (janusMessage, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return janusMessage{}, err
	}
	request, err := http.NewRequestWithContext(s.ctx, http.MethodPost, path, bytes.NewReader(data))
	if err != nil {
		return janusMessage{}, err
	}
	request.Header.Set("Content-Type", "application/json")
	response, err := s.client.Do(request)
	if err != nil {
		return janusMessage{}, err
	}
	defer response.Body.Close()
	var reply janusMessage
	if err := json.NewDecoder(response.Body).Decode(&reply); err != nil {
		return janusMessage{}, fmt.Errorf("%s: %w", body["janus"], err)
	}
	if reply.Janus == "error" && reply.Error != nil {
		return reply, fmt.Errorf("%s: janus error %d: %s", body["janus"], reply.Error.Code, reply.Error.Reason)
	}
	return reply, nil
}

// attach attaches a VideoRoom handle and returns its id.
func (s *janusSession) attach() (uint64, error) {
	reply, err := s.post(s.root, map[string]any{"janus": "attach", "plugin": "janus.plugin.videoroom"})
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	s.events[reply.Data.ID] = make(chan janusMessage, 64)
	s.mu.Unlock()
	return reply.Data.ID, nil
}

// request sends a VideoRoom request on handle (with jsep, if not nil) and returns the
// plugin's reply: at once for a synchronous request, else the event for its transaction.
func (s *janusSession) request(handle uint64, body map[string]any, jsep *janusJSEP) (videoRoomReply, *janusJSEP, error) {
	transaction := strconv.FormatUint(s.next.Add(1), 10)
	wait := make(chan janusMessage, 1)
	s.mu.Lock()
	s.waiting[transaction] = wait
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.waiting, transaction)
		s.mu.Unlock()
	}()
	message := map[string]any{"janus": "message", "body": body, "transaction": transaction}
	if jsep != nil {
		message["jsep"] = jsep
	}
	// The waiter is registered before the POST: the event may come before the reply.
	reply, err := s.send(fmt.Sprintf("%s/%d", s.root, handle), message)
	if err != nil {
		return videoRoomReply{}, nil, fmt.Errorf("%s: %w", body["request"], err)
	}
	if reply.Janus == "ack" {
		select {
		case reply = <-wait:
		case <-time.After(janusReplyTimeout):
			return videoRoomReply{}, nil, fmt.Errorf("%s: no event within %s", body["request"], janusReplyTimeout)
		case <-s.ctx.Done():
			return videoRoomReply{}, nil, s.ctx.Err()
		}
	}
	var data videoRoomReply
	if err := json.Unmarshal(reply.PluginData.Data, &data); err != nil {
		return videoRoomReply{}, nil, fmt.Errorf("%s: %s reply: %w", body["request"], reply.Janus, err)
	}
	if data.ErrorCode != 0 {
		return data, nil, fmt.Errorf("%s: %w", body["request"], &videoRoomError{data.ErrorCode, data.Error})
	}
	return data, reply.JSEP, nil
}

// poll hands out events until the participant leaves or the session is gone.
func (s *janusSession) poll() {
	for s.ctx.Err() == nil {
		request, err := http.NewRequestWithContext(s.ctx, http.MethodGet, s.root+"?maxev=10", nil)
		if err != nil {
			return
		}
		response, err := s.client.Do(request)
		if err != nil {
			if s.ctx.Err() == nil {
				s.fail("janus long poll: %v", err)
			}
			return
		}
		var events []janusMessage
		err = json.NewDecoder(response.Body).Decode(&events)
		response.Body.Close()
		if err != nil {
			if s.ctx.Err() == nil {
				s.fail("janus long poll: %v", err)
			}
			return
		}
		for _, event := range events {
			s.dispatch(event)
		}
	}
}

func (s *janusSession) dispatch(event janusMessage) {
	switch event.Janus {
	case "event":
	case "hangup", "detached":
		if s.ctx.Err() == nil {
			s.fail("janus %s on handle %d", event.Janus, event.Sender)
		}
		return
	default: // keepalive, ack, webrtcup, media, slowlink: nothing to do
		return
	}
	s.mu.Lock()
	wait, waited := s.waiting[event.Transaction]
	events := s.events[event.Sender]
	s.mu.Unlock()
	if waited && event.Transaction != "" {
		select {
		case wait <- event:
		default:
		}
		return
	}
	if events != nil {
		select {
		case events <- event:
		default: // nobody reads a handle's events once its seat is set up
		}
	}
}

func (s *janusSession) keepalive() {
	ticker := time.NewTicker(janusKeepalive)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
			if _, err := s.post(s.root, map[string]any{"janus": "keepalive"}); err != nil && s.ctx.Err() == nil {
				s.fail("janus keepalive: %v", err)
			}
		case <-s.ctx.Done():
			return
		}
	}
}

// janusFeed is a seat's publisher id: fixed, so that every seat knows the others'.
func janusFeed(room uint64, seat string) uint64 {
	return room*10 + uint64(seatIndex[seat]) + 1
}

// ensureRoom creates the room if it does not exist yet; a room another seat created first
// is just as good.
func (s *janusSession) ensureRoom(handle, room uint64) error {
	exists, _, err := s.request(handle, map[string]any{"request": "exists", "room": room}, nil)
	if err != nil || exists.Exists {
		return err
	}
	create := map[string]any{"request": "create", "room": room, "permanent": false,
		"publishers": 3, "videocodec": "vp8", "audiocodec": "opus"}
	if dir := os.Getenv(janusRecordDirVariable); dir != "" {
		create["record"] = true
		create["rec_dir"] = dir
	}
	_, _, err = s.request(handle, create, nil)
	var videoRoom *videoRoomError
	if errors.As(err, &videoRoom) && videoRoom.code == janusVideoRoomRoomExists {
		return nil
	}
	return err
}

// localDescription sets description as pc's own and returns it with every candidate in
// it: Janus takes candidates in the SDP, which spares a trickle request per candidate.
func localDescription(pc *webrtc.PeerConnection, description webrtc.SessionDescription) (*janusJSEP, error) {
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(description); err != nil {
		return nil, err
	}
	<-gathered
	local := pc.LocalDescription()
	return &janusJSEP{Type: local.Type.String(), SDP: local.SDP}, nil
}

// joinJanus joins Janus's VideoRoom at p.server (its HTTP API root) as this participant.
func (p *participant) joinJanus(api *webrtc.API) error {
	p.joinAt = time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-p.stop
		cancel()
	}()
	s := &janusSession{
		client:  &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}, Timeout: 75 * time.Second},
		ctx:     ctx,
		waiting: map[string]chan janusMessage{},
		events:  map[uint64]chan janusMessage{},
		fail: func(format string, args ...any) {
			p.fail("%s room %d: "+format, append([]any{p.spec.Seat, p.spec.Room}, args...)...)
		},
	}
	created, err := s.post(p.server, map[string]any{"janus": "create"})
	if err != nil {
		return err
	}
	s.root = fmt.Sprintf("%s/%d", p.server, created.Data.ID)
	go s.poll()
	go s.keepalive()
	publisher, err := s.attach()
	if err != nil {
		return err
	}
	subscriber, err := s.attach()
	if err != nil {
		return err
	}
	room := uint64(p.spec.Room) + 1 // Janus takes room 0 as "pick one"
	if err := s.ensureRoom(publisher, room); err != nil {
		return err
	}

	// Publish.
	joined, _, err := s.request(publisher, map[string]any{"request": "join", "ptype": "publisher",
		"room": room, "id": janusFeed(room, p.spec.Seat), "display": p.spec.Seat}, nil)
	if err != nil {
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
	var connectedOnce sync.Once
	pc.OnConnectionStateChange(func(state webrtc.PeerConnectionState) {
		switch state {
		case webrtc.PeerConnectionStateConnected:
			connectedOnce.Do(func() {
				close(p.started)
				startMedia()
			})
		case webrtc.PeerConnectionStateFailed:
			p.fail("%s room %d: publishing connection failed", p.spec.Seat, p.spec.Room)
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return err
	}
	jsep, err := localDescription(pc, offer)
	if err != nil {
		return err
	}
	_, answer, err := s.request(publisher, map[string]any{"request": "publish"}, jsep)
	if err != nil {
		return err
	}
	if answer == nil {
		return errors.New("publish: no SDP answer")
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer.SDP}); err != nil {
		return err
	}

	// Wait until the other two seats publish, then subscribe to both in one connection.
	unpublished := map[uint64]bool{}
	for _, seat := range otherSeats(p.spec.Seat) {
		unpublished[janusFeed(room, seat)] = true
	}
	published := func(reply videoRoomReply) {
		for _, publisher := range reply.Publishers {
			delete(unpublished, publisher.ID)
		}
	}
	published(joined)
	s.mu.Lock()
	events := s.events[publisher]
	s.mu.Unlock()
	deadline := time.After(janusReplyTimeout)
	for len(unpublished) > 0 {
		select {
		case event := <-events:
			var reply videoRoomReply
			if json.Unmarshal(event.PluginData.Data, &reply) == nil {
				published(reply)
			}
		case <-deadline:
			return fmt.Errorf("the other seats did not publish within %s", janusReplyTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	streams := []map[string]any{}
	for _, seat := range otherSeats(p.spec.Seat) {
		streams = append(streams, map[string]any{"feed": janusFeed(room, seat)})
	}
	attached, offered, err := s.request(subscriber, map[string]any{"request": "join", "ptype": "subscriber",
		"room": room, "streams": streams}, nil)
	if err != nil {
		return err
	}
	if offered == nil {
		return errors.New("subscribe: no SDP offer")
	}
	seats := map[string]string{} // mid → publishing seat
	for _, stream := range attached.Streams {
		seats[stream.Mid] = stream.FeedDisplay
	}
	sub, err := api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle})
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		_ = sub.Close()
		// Hang up at once rather than leave Janus to time the session out.
		destroy, _ := json.Marshal(map[string]any{"janus": "destroy", "transaction": "destroy"})
		if response, err := s.client.Post(s.root, "application/json", bytes.NewReader(destroy)); err == nil {
			response.Body.Close()
		}
	}()
	sub.OnTrack(func(track *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
		seat := ""
		for _, t := range sub.GetTransceivers() {
			if t.Receiver() == receiver {
				seat = seats[t.Mid()]
			}
		}
		p.receive(track, seat)
	})
	sub.OnConnectionStateChange(func(state webrtc.PeerConnectionState) {
		if state == webrtc.PeerConnectionStateFailed {
			p.fail("%s room %d: subscribing connection failed", p.spec.Seat, p.spec.Room)
		}
	})
	if err := sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offered.SDP}); err != nil {
		return err
	}
	subAnswer, err := sub.CreateAnswer(nil)
	if err != nil {
		return err
	}
	jsep, err = localDescription(sub, subAnswer)
	if err != nil {
		return err
	}
	_, _, err = s.request(subscriber, map[string]any{"request": "start"}, jsep)
	return err
}

// otherSeats are the two seats other than seat, in a fixed order.
func otherSeats(seat string) []string {
	var out []string
	for _, other := range []string{"applicant", "cbsa", "cbp"} {
		if other != seat {
			out = append(out, other)
		}
	}
	return out
}
