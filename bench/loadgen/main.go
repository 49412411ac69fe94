// Command loadgen is the HTTP benchmarks' load generator: one small process that sends
// POST requests with a JSON body over keep-alive connections and prints one JSON object.
//
// An in-process Python client (aiohttp) spends about as much CPU per request as the
// server it measures, on the same two cores, and its event loop's own delays show up as
// latency. This one spends a few microseconds a request on one core (-gomaxprocs 1).
//
// Two modes:
//
//   - open (-rate R -duration S): R*S requests sent at fixed times, whatever the
//     answers do; each latency counts from the request's intended send time, so a
//     stall delays every request behind it and is counted (no coordinated omission).
//   - closed (-connections N -duration S): N connections, each sending its next
//     request as soon as the last one is answered: the server's maximum throughput.
//
// A status other than 200, an I/O error or a timeout is an error; every -check-every'th
// answer per connection must also parse as JSON. See bench/loadgen/README.md.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
)

type options struct {
	url         string
	mode        string
	rate        float64
	duration    float64
	connections int
	warmup      int
	template    string
	mod, start  int64
	pad         int
	headers     headerFlags
	checkEvery  int
	timeout     time.Duration
	gomaxprocs  int
}

type headerFlags []string

func (h *headerFlags) String() string { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error {
	if !strings.Contains(v, ":") {
		return fmt.Errorf("header %q: want \"Name: value\"", v)
	}
	*h = append(*h, v)
	return nil
}

func parse(args []string) (options, *url.URL, error) {
	var o options
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.StringVar(&o.url, "url", "", "target URL, http://host:port/path (required)")
	fs.StringVar(&o.mode, "mode", "open", "open (fixed rate) or closed (N connections flat out)")
	fs.Float64Var(&o.rate, "rate", 1000, "open: requests per second offered")
	fs.Float64Var(&o.duration, "duration", 4, "seconds measured (open: rate*duration requests)")
	fs.IntVar(&o.connections, "connections", 0, "keep-alive connections (default 16 open, 64 closed)")
	fs.IntVar(&o.warmup, "warmup", 0, "requests sent before the measured span (not measured)")
	fs.StringVar(&o.template, "body", `{"input":{"text":"ticket {i}"}}`, `JSON body; each "{i}" becomes the request's counter`)
	fs.Int64Var(&o.mod, "mod", 0, "counter modulo this when > 0 (inputs repeat)")
	fs.Int64Var(&o.start, "start", 0, "the first request's counter (the warm-up's first)")
	fs.IntVar(&o.pad, "pad", 0, "zero-pad the counter to this many digits")
	fs.Var(&o.headers, "H", `extra header "Name: value" (repeatable)`)
	fs.IntVar(&o.checkEvery, "check-every", 16, "parse every Nth answer per connection as JSON (0: none)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "per request (and per connect)")
	fs.IntVar(&o.gomaxprocs, "gomaxprocs", 1, "CPUs this process may use at once (the server keeps the rest)")
	if err := fs.Parse(args); err != nil {
		return o, nil, err
	}
	target, err := url.Parse(o.url)
	switch {
	case o.url == "":
		return o, nil, fmt.Errorf("-url is required")
	case err != nil || target.Scheme != "http" || target.Host == "":
		return o, nil, fmt.Errorf("-url %q: want http://host:port/path (plain HTTP only)", o.url)
	case o.mode != "open" && o.mode != "closed":
		return o, nil, fmt.Errorf("-mode %q: want open or closed", o.mode)
	case o.mode == "open" && !(o.rate > 0):
		return o, nil, fmt.Errorf("-rate %v: want > 0", o.rate)
	case !(o.duration >= 0) || o.warmup < 0 || o.connections < 0 || o.gomaxprocs < 1 || o.checkEvery < 0:
		return o, nil, fmt.Errorf("-duration, -warmup, -connections, -check-every must be >= 0 and -gomaxprocs >= 1")
	case !json.Valid([]byte(strings.ReplaceAll(o.template, "{i}", "0"))):
		return o, nil, fmt.Errorf("-body %q is not JSON once {i} is a number", o.template)
	}
	if o.connections == 0 {
		o.connections = map[string]int{"open": 16, "closed": 64}[o.mode]
	}
	return o, target, nil
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func main() {
	o, target, err := parse(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	runtime.GOMAXPROCS(o.gomaxprocs)
	// No collector during the run (it would take the one CPU from the connections); the
	// samples are preallocated, so the heap grows little. The limit is the safety net.
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(1 << 30)
	rep, err := run(o, target)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	out := json.NewEncoder(os.Stdout)
	out.SetIndent("", "  ")
	_ = out.Encode(rep)
}
