//go:build !linux

package main

import "time"

// ticker falls back to Go's timer off Linux (millisecond wake-ups when idle: the send
// lag in the report shows what that costs).
type ticker struct {
	start  time.Time
	period time.Duration
	fired  int64
}

func newTicker(first, period time.Duration) (*ticker, error) {
	return &ticker{start: time.Now().Add(first), period: period}, nil
}

func (t *ticker) wait() (int64, error) {
	time.Sleep(time.Until(t.start.Add(time.Duration(t.fired) * t.period)))
	due := int64(time.Since(t.start)/t.period) + 1
	n := due - t.fired
	t.fired = due
	return n, nil
}

func (t *ticker) stop() {}
