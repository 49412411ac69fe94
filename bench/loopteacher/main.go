// Command loopteacher is the teacher bench's loopback teacher: an OpenAI-compatible
// chat completions endpoint that answers every POST with one fixed, valid answer,
// either at once or after a fixed delay, over keep-alive connections.
//
// It stands in for a remote API in bench/teacher_bench.py. The Python one it replaces
// (an aiohttp server) spent a large share of one of the machine's two cores at
// 1,000 requests/s, so the gateway it measured competed with its own harness. This one
// spends a few tens of microseconds a request on one core (-gomaxprocs 1).
//
// Routes (the same as the Python teacher's):
//
//	POST /instant/v1/chat/completions  answers at once
//	POST /slow/v1/chat/completions     answers after -delay (1s by default)
//
// It listens on -addr (127.0.0.1:0: a free port), prints the port it got on one line
// of stdout, and serves until it is killed.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"time"
)

// defaultAnswer is the Python teacher's ANSWER (bench/teacher_bench.py), byte for byte
// as json.dumps writes it; -answer replaces it.
const defaultAnswer = `{"id": "chatcmpl-bench", "object": "chat.completion", "model": "gpt-4o", ` +
	`"choices": [{"index": 0, "message": {"role": "assistant", "content": ` +
	`"{\"category\": \"billing\", \"priority\": 2}"}, "finish_reason": "stop"}], ` +
	`"usage": {"prompt_tokens": 60, "completion_tokens": 12, "total_tokens": 72}}`

type teacher struct {
	body   []byte
	length string
}

func (t *teacher) handler(delay time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		// Read the whole request before answering, as a real API does, so the
		// connection is ready for the next one (keep-alive).
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return
		}
		if delay > 0 {
			time.Sleep(delay)
		}
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{t.length}
		_, _ = w.Write(t.body)
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "where to listen (port 0: a free one, printed)")
	delay := flag.Duration("delay", time.Second, "how long /slow/ waits before it answers")
	answer := flag.String("answer", defaultAnswer, "the answer's JSON body")
	procs := flag.Int("gomaxprocs", 1, "CPUs this process may use at once (the gateway keeps the rest)")
	flag.Parse()
	if !json.Valid([]byte(*answer)) || *delay < 0 || *procs < 1 {
		fmt.Fprintln(os.Stderr, "loopteacher: -answer must be JSON, -delay >= 0, -gomaxprocs >= 1")
		os.Exit(2)
	}
	runtime.GOMAXPROCS(*procs)
	t := &teacher{body: []byte(*answer), length: strconv.Itoa(len(*answer))}
	mux := http.NewServeMux()
	mux.Handle("/instant/v1/chat/completions", t.handler(0))
	mux.Handle("/slow/v1/chat/completions", t.handler(*delay))
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loopteacher:", err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	// No timeouts: the callers are the bench's own, and an idle keep-alive connection
	// must stay open between the bench's phases.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 0, IdleTimeout: 0}
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "loopteacher:", err)
		os.Exit(1)
	}
}
