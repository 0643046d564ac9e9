package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/pion/webrtc/v3/pkg/media/ivfreader"
	"github.com/pion/webrtc/v3/pkg/media/oggreader"
)

// The marker appended to every video frame the generator sends: the VP8 decoder stops at
// the end of the last partition it reads, so trailing bytes leave the picture intact and
// the receiver finds them in the last packet(s) of the frame without decoding anything.
const (
	markerMagic = "NXLG"
	markerSize  = 4 + 2 + 1 + 1 + 4 + 8 // magic, room, seat, reserved, counter, sent (µs)
)

type marker struct {
	room    uint16
	seat    uint8
	counter uint32
	sentUs  int64
}

func (m marker) appendTo(frame []byte) []byte {
	frame = append(frame, markerMagic...)
	frame = binary.BigEndian.AppendUint16(frame, m.room)
	frame = append(frame, m.seat, 0)
	frame = binary.BigEndian.AppendUint32(frame, m.counter)
	return binary.BigEndian.AppendUint64(frame, uint64(m.sentUs))
}

func readMarker(tail []byte) (marker, bool) {
	if len(tail) < markerSize || !bytes.Equal(tail[len(tail)-markerSize:][:4], []byte(markerMagic)) {
		return marker{}, false
	}
	t := tail[len(tail)-markerSize+4:]
	return marker{
		room:    binary.BigEndian.Uint16(t[0:]),
		seat:    t[2],
		counter: binary.BigEndian.Uint32(t[4:]),
		sentUs:  int64(binary.BigEndian.Uint64(t[8:])),
	}, true
}

// clip is the media every participant replays: VP8 frames (the first one a keyframe, the
// only one) and 20 ms Opus packets.
type clip struct {
	video [][]byte
	audio [][]byte
}

// prepareClip encodes the clip once with Debian's ffmpeg into dir (kept for later runs):
// 2 s of moving test picture with noise so the encoder spends ~800 kbps (about what
// bench/interviews.py's clip carries, the keyframe included), one keyframe. One thread at
// the "good" deadline gives the same clip on every machine; at "realtime" libvpx's rate
// control follows the machine's speed, and the same settings gave clips of very
// different bitrates.
func prepareClip(dir string) (string, string, error) {
	ivf, ogg := filepath.Join(dir, "clip-640x480-vp8-b620k.ivf"), filepath.Join(dir, "clip-opus.ogg")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	jobs := []struct {
		path string
		args []string
	}{
		{ivf, []string{
			"-f", "lavfi", "-i", "testsrc2=size=640x480:rate=30,noise=alls=12:allf=t",
			"-t", "2", "-c:v", "libvpx", "-threads", "1", "-b:v", "620k", "-minrate", "620k", "-maxrate", "620k",
			"-g", "60", "-keyint_min", "60", "-deadline", "good", "-cpu-used", "5",
			"-lag-in-frames", "0", "-auto-alt-ref", "0", "-f", "ivf",
		}},
		{ogg, []string{
			"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "2",
			"-c:a", "libopus", "-b:a", "32k", "-frame_duration", "20", "-page_duration", "20000",
			"-f", "ogg",
		}},
	}
	for _, job := range jobs {
		if _, err := os.Stat(job.path); err == nil {
			continue
		}
		partial := job.path + ".partial"
		args := append([]string{"-hide_banner", "-loglevel", "error", "-y", "-threads", "1"}, job.args...)
		cmd := exec.Command("ffmpeg", append(args, partial)...)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return "", "", fmt.Errorf("ffmpeg (Debian's ffmpeg package) failed: %w", err)
		}
		if err := os.Rename(partial, job.path); err != nil {
			return "", "", err
		}
	}
	return ivf, ogg, nil
}

func loadClip(ivfPath, oggPath string) (*clip, error) {
	c := &clip{}
	f, err := os.Open(ivfPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ivf, _, err := ivfreader.NewWith(f)
	if err != nil {
		return nil, err
	}
	for {
		frame, _, err := ivf.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, err
		}
		c.video = append(c.video, frame)
	}
	if len(c.video) == 0 || c.video[0][0]&1 != 0 { // bit 0 clear: a VP8 keyframe
		return nil, fmt.Errorf("%s does not start with a VP8 keyframe", ivfPath)
	}
	g, err := os.Open(oggPath)
	if err != nil {
		return nil, err
	}
	defer g.Close()
	ogg, _, err := oggreader.NewWith(g)
	if err != nil {
		return nil, err
	}
	for {
		page, _, err := ogg.ParseNextPage()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, err
		}
		if bytes.HasPrefix(page, []byte("OpusTags")) {
			continue
		}
		c.audio = append(c.audio, page)
	}
	if len(c.audio) == 0 {
		return nil, fmt.Errorf("%s holds no Opus packets", oggPath)
	}
	return c, nil
}
