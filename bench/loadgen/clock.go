package main

import (
	"sync"
	"time"
)

const (
	videoInterval = time.Second / 30
	audioInterval = 20 * time.Millisecond
	// pacerInterval is how often the clock sends what is due: libwebrtc's pacer also
	// sends in 5 ms steps, and one wake-up per step for every participant together costs
	// far less than a timer per track.
	pacerInterval = 5 * time.Millisecond
)

// clock sends every participant's frames as they fall due, each track on its own phase
// (from when its connection came up), from one goroutine; after each turn's sends it
// opens the gate the sockets are read at (net.go).
type clock struct {
	mu   sync.Mutex
	jobs []*job
	gate *gate
}

type job struct {
	next     time.Time
	interval time.Duration
	step     func() bool // sends one frame; false: the track is done
}

func (c *clock) add(interval time.Duration, step func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.jobs = append(c.jobs, &job{next: time.Now(), interval: interval, step: step})
}

func (c *clock) run(tick time.Duration) {
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	for now := range ticker.C {
		c.mu.Lock()
		kept := c.jobs[:0]
		for _, j := range c.jobs {
			alive := true
			for alive && !now.Before(j.next) {
				alive = j.step()
				j.next = j.next.Add(j.interval)
				if now.Sub(j.next) > 4*j.interval { // fell far behind: skip, don't burst
					j.next = now.Add(j.interval)
				}
			}
			if alive {
				kept = append(kept, j)
			}
		}
		for i := len(kept); i < len(c.jobs); i++ {
			c.jobs[i] = nil
		}
		c.jobs = kept
		c.mu.Unlock()
		c.gate.open()
	}
}
