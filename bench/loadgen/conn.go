package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// conn is one keep-alive HTTP/1.1 connection spoken by hand: net/http's client costs
// several times the CPU per request, and that CPU is taken from the server under test.
type conn struct {
	addr    string
	timeout time.Duration
	c       net.Conn
	r       *bufio.Reader
	body    []byte // the last response body (reused)
	opened  int    // connections dialled over the run, reconnects included
}

// reply is what one exchange produced: a status, or an error (no usable answer).
type reply struct {
	status  int
	checked bool // the body was parsed as JSON
	badJSON bool
}

var errFraming = errors.New("malformed HTTP response")

func (k *conn) dial() error {
	c, err := net.DialTimeout("tcp", k.addr, k.timeout)
	if err != nil {
		return err
	}
	if tcp, ok := c.(*net.TCPConn); ok {
		_ = tcp.SetNoDelay(true)
	}
	k.c, k.r = c, bufio.NewReaderSize(c, 16<<10)
	k.opened++
	return nil
}

func (k *conn) close() {
	if k.c != nil {
		_ = k.c.Close()
		k.c = nil
	}
}

// do sends one request (already framed) and reads its response. On any error the
// connection is closed, and the next call dials again.
func (k *conn) do(req []byte, check bool) (reply, error) {
	if k.c == nil {
		if err := k.dial(); err != nil {
			return reply{}, err
		}
	}
	_ = k.c.SetDeadline(time.Now().Add(k.timeout))
	if _, err := k.c.Write(req); err != nil {
		k.close()
		return reply{}, err
	}
	rep, keep, err := k.read(check)
	if err != nil || !keep {
		k.close()
	}
	return rep, err
}

func (k *conn) read(check bool) (reply, bool, error) {
	line, err := k.r.ReadSlice('\n')
	if err != nil {
		return reply{}, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return reply{}, false, fmt.Errorf("%w: status line %q", errFraming, line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return reply{}, false, fmt.Errorf("%w: status line %q", errFraming, line)
	}
	length, chunked, keep := -1, false, line[7] == '1'
	for {
		h, err := k.r.ReadSlice('\n')
		if err != nil {
			return reply{}, false, err
		}
		if len(h) <= 2 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return reply{}, false, fmt.Errorf("%w: header %q", errFraming, h)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return reply{}, false, fmt.Errorf("%w: Content-Length %q", errFraming, value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.Contains(bytes.ToLower(value), []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				keep = false
			}
		}
	}
	switch {
	case chunked:
		err = k.readChunked()
	case length >= 0:
		err = k.readN(length)
	case status == 204 || status == 304:
		k.body = k.body[:0]
	default: // no framing: the body runs to the end of the connection
		k.body, err = io.ReadAll(k.r)
		keep = false
	}
	if err != nil {
		return reply{}, false, err
	}
	rep := reply{status: status}
	if check {
		rep.checked, rep.badJSON = true, !json.Valid(k.body)
	}
	return rep, keep, nil
}

func (k *conn) readN(n int) error {
	if cap(k.body) < n {
		k.body = make([]byte, n)
	}
	k.body = k.body[:n]
	_, err := io.ReadFull(k.r, k.body)
	return err
}

func (k *conn) readChunked() error {
	k.body = k.body[:0]
	for {
		line, err := k.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(bytes.TrimSpace(line), []byte(";"))
		n, err := strconv.ParseInt(string(size), 16, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("%w: chunk size %q", errFraming, line)
		}
		if n == 0 { // trailers, then the blank line
			for {
				t, err := k.r.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(t) <= 2 {
					return nil
				}
			}
		}
		start := len(k.body)
		k.body = append(k.body, make([]byte, n)...)
		if _, err := io.ReadFull(k.r, k.body[start:]); err != nil {
			return err
		}
		if _, err := k.r.Discard(2); err != nil { // the chunk's CRLF
			return err
		}
	}
}
