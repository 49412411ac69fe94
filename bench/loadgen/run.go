package main

import (
	"fmt"
	"math"
	"net/url"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// report is the one JSON object printed on stdout.
type report struct {
	Mode              string         `json:"mode"`
	URL               string         `json:"url"`
	OfferedRPS        float64        `json:"offered_rps,omitempty"`
	DurationS         float64        `json:"duration_s"`
	Connections       int            `json:"connections"`
	GOMAXPROCS        int            `json:"gomaxprocs"`
	Warmup            int            `json:"warmup"`
	WarmupErrors      int            `json:"warmup_errors"`
	Requests          int            `json:"requests"`
	Answered          int            `json:"answered"`
	OK                int            `json:"ok"`
	Errors            int            `json:"errors"`
	Non200            int            `json:"non_200"`
	IOErrors          int            `json:"io_errors"`
	BadJSON           int            `json:"bad_json"`
	JSONChecked       int            `json:"json_checked"`
	StatusCounts      map[string]int `json:"status_counts"`
	FirstError        string         `json:"first_error,omitempty"`
	AchievedRPS       float64        `json:"achieved_rps"`
	ElapsedS          float64        `json:"elapsed_s"`
	Latency           latency        `json:"latency"`
	SendLag           *latency       `json:"send_lag,omitempty"`
	ClientCPUS        float64        `json:"client_cpu_s"`
	ConnectionsOpened int            `json:"connections_opened"`
	NextCounter       int64          `json:"next_counter"`
}

type worker struct {
	k        *conn
	b        *builder
	every    int
	answered int
	samples  []sample
	lastDone time.Time
	err      error
}

// one sends the request with this counter; times are the caller's (intended send time).
func (w *worker) one(counter int64, intended time.Time) sample {
	req := w.b.build(counter)
	check := w.every > 0 && w.answered%w.every == 0
	sent := time.Now()
	rep, err := w.k.do(req, check)
	done := time.Now()
	w.lastDone = done
	if err != nil {
		if w.err == nil {
			w.err = err
		}
		return sample{latency: int64(done.Sub(intended)), lag: int64(sent.Sub(intended))}
	}
	w.answered++
	return sample{
		latency: int64(done.Sub(intended)), lag: int64(sent.Sub(intended)),
		status: rep.status, checked: rep.checked, badJSON: rep.badJSON,
	}
}

func run(o options, target *url.URL) (*report, error) {
	tmpl := newBuilder(target, o.template, o.headers, o.mod, o.pad)
	ws := make([]*worker, o.connections)
	for i := range ws {
		ws[i] = &worker{k: &conn{addr: target.Host, timeout: o.timeout}, b: tmpl.clone(), every: o.checkEvery}
		if err := ws[i].k.dial(); err != nil {
			return nil, fmt.Errorf("cannot connect to %s: %w", target.Host, err)
		}
	}
	warmupErrors := warm(ws, o)
	runtime.GC() // the warm-up's garbage, before the collector is left off
	cpu := cpuSeconds()
	var t0 time.Time
	var requests int
	var lag bool
	var err error
	if o.mode == "open" {
		t0, requests, err = open(ws, o)
		lag = true
	} else {
		t0, requests = closed(ws, o)
	}
	if err != nil {
		return nil, err
	}
	rep := summarise(ws, t0, lag)
	rep.Mode, rep.URL, rep.DurationS, rep.Connections = o.mode, o.url, o.duration, o.connections
	rep.GOMAXPROCS, rep.Warmup, rep.WarmupErrors, rep.Requests = o.gomaxprocs, o.warmup, warmupErrors, requests
	rep.ClientCPUS = math.Round((cpuSeconds()-cpu)*1e6) / 1e6
	rep.NextCounter = o.start + int64(o.warmup) + int64(requests)
	if o.mode == "open" {
		rep.OfferedRPS = o.rate
	}
	return rep, nil
}

// warm sends -warmup requests over all the connections at once, unmeasured.
func warm(ws []*worker, o options) int {
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(o.warmup) {
					return
				}
				if s := w.one(o.start+i, time.Now()); s.status != 200 || s.badJSON {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	for _, w := range ws {
		w.answered, w.err = 0, nil
	}
	return int(failed.Load())
}

// open sends rate*duration requests at fixed times from a timer; idle connections take
// them in turn, and a request that finds none idle waits (its wait is counted).
func open(ws []*worker, o options) (time.Time, int, error) {
	n := int(math.Round(o.rate * o.duration))
	period := time.Duration(math.Round(1e9 / o.rate))
	first := o.start + int64(o.warmup)
	for _, w := range ws {
		w.samples = make([]sample, 0, n/len(ws)+n/8+16)
	}
	jobs := make(chan int64, n)
	var wg sync.WaitGroup
	lead := 10 * time.Millisecond
	t0 := time.Now().Add(lead)
	tk, err := newTicker(lead, period)
	if err != nil {
		return t0, 0, err
	}
	defer tk.stop()
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				w.samples = append(w.samples, w.one(first+i, t0.Add(time.Duration(i)*period)))
			}
		}()
	}
	var sent int64
	for sent < int64(n) {
		due, err := tk.wait()
		if err != nil {
			close(jobs)
			return t0, int(sent), err
		}
		for ; due > 0 && sent < int64(n); due-- {
			jobs <- sent
			sent++
		}
	}
	close(jobs)
	wg.Wait()
	return t0, n, nil
}

// closed keeps every connection busy until the duration is over.
func closed(ws []*worker, o options) (time.Time, int) {
	var next atomic.Int64
	first := o.start + int64(o.warmup)
	t0 := time.Now()
	stop := t0.Add(time.Duration(o.duration * 1e9))
	var wg sync.WaitGroup
	for _, w := range ws {
		w.samples = make([]sample, 0, 1<<12)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				start := time.Now()
				if !start.Before(stop) {
					return
				}
				w.samples = append(w.samples, w.one(first+next.Add(1)-1, start))
			}
		}()
	}
	wg.Wait()
	return t0, int(next.Load())
}

func summarise(ws []*worker, t0 time.Time, withLag bool) *report {
	rep := &report{StatusCounts: map[string]int{}}
	var lat, lag []int64
	end := t0
	for _, w := range ws {
		rep.ConnectionsOpened += w.k.opened
		if w.err != nil && rep.FirstError == "" {
			rep.FirstError = w.err.Error()
		}
		if w.lastDone.After(end) {
			end = w.lastDone
		}
		for _, s := range w.samples {
			lag = append(lag, s.lag)
			if s.status == 0 {
				rep.IOErrors++
				continue
			}
			rep.Answered++
			rep.StatusCounts[strconv.Itoa(s.status)]++
			lat = append(lat, s.latency)
			if s.checked {
				rep.JSONChecked++
			}
			switch {
			case s.status != 200:
				rep.Non200++
			case s.badJSON:
				rep.BadJSON++
			default:
				rep.OK++
			}
		}
	}
	rep.Errors = rep.Non200 + rep.IOErrors + rep.BadJSON
	rep.ElapsedS = seconds(end.Sub(t0))
	if rep.ElapsedS > 0 {
		rep.AchievedRPS = math.Round(float64(rep.Answered)/end.Sub(t0).Seconds()*10) / 10
	}
	rep.Latency = percentiles(lat)
	if withLag {
		l := percentiles(lag)
		rep.SendLag = &l
	}
	return rep
}
