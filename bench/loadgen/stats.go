package main

import (
	"math"
	"slices"
	"time"
)

// sample is one measured request: latency and send lag in nanoseconds, and the HTTP
// status (0: no answer, an I/O error or a timeout).
type sample struct {
	latency int64
	lag     int64
	status  int
	checked bool
	badJSON bool
}

// Latency percentiles in milliseconds (nearest rank), over the answered requests.
type latency struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p99_9_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

func ms(ns int64) float64 { return math.Round(float64(ns)/1e3) / 1e3 }

func percentiles(ns []int64) latency {
	if len(ns) == 0 {
		return latency{}
	}
	slices.Sort(ns)
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(ns)))) - 1
		return ms(ns[max(0, min(len(ns)-1, i))])
	}
	var sum int64
	for _, v := range ns {
		sum += v
	}
	return latency{
		P50: at(0.50), P90: at(0.90), P99: at(0.99), P999: at(0.999),
		Max: ms(ns[len(ns)-1]), Mean: ms(sum / int64(len(ns))),
	}
}

func seconds(d time.Duration) float64 { return math.Round(d.Seconds()*1e6) / 1e6 }
