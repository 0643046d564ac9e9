package main

import (
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"
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

// run is the process's only sleep: with one thread (GOMAXPROCS 1, main.go), it sleeps in
// a raw nanosleep until the next turn holding the thread's only P, so nothing else in the
// process runs or wakes meanwhile; each turn it lets everything that fell due run (pion's
// timers: NACK, reports, ICE keepalives), sends what is due, opens the gate, and lets the
// readers run before it sleeps again. Left to itself the Go scheduler sleeps in
// epoll_wait with a timeout in whole milliseconds, which woke the process twice a turn
// and again for each of pion's timers, and on a virtual machine each wake-up costs about
// as much as a turn's work. The network poller (the signalling WebSockets) is polled by the
// runtime's monitor thread meanwhile, every 10 ms at most.
func (c *clock) run(tick time.Duration) {
	next := time.Now()
	for {
		next = next.Add(tick)
		if behind := time.Since(next); behind > tick {
			next = next.Add(behind.Truncate(tick)) // fell behind: skip turns, don't burst
		}
		sleepUntil(next)
		yieldUntilIdle()
		now := time.Now()
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
		yieldUntilIdle()
	}
}

// sleepUntil sleeps the thread (and with it the P) until t.
func sleepUntil(t time.Time) {
	for {
		d := time.Until(t)
		if d <= 0 {
			return
		}
		ts := syscall.NsecToTimespec(int64(d))
		// EINTR (the profiler's or the runtime's signals): sleep what is left.
		_, _, _ = syscall.RawSyscall(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0)
	}
}

// yieldUntilIdle lets every runnable goroutine run. A yield puts this goroutine on the
// global run queue, which the scheduler takes from once the P's own queue is empty (or,
// for fairness, every 61st time): two yields in a row that come straight back mean
// nothing else was left to run.
func yieldUntilIdle() {
	for fast := 0; fast < 2; {
		start := time.Now()
		runtime.Gosched()
		if time.Since(start) < 20*time.Microsecond {
			fast++
		} else {
			fast = 0
		}
	}
}
