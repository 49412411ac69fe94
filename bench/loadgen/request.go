package main

import (
	"bytes"
	"fmt"
	"net/url"
	"strconv"
)

// builder frames one POST per counter value: the body template with every "{i}"
// replaced by the counter (modulo mod when mod > 0, zero-padded to pad digits), as
// the Python benches vary their inputs per request.
type builder struct {
	head  []byte   // request line and fixed headers, up to "Content-Length: "
	parts [][]byte // the template split at "{i}"
	mod   int64
	pad   int
	body  []byte
	req   []byte
}

func newBuilder(target *url.URL, template string, headers []string, mod int64, pad int) *builder {
	path := target.RequestURI()
	var h bytes.Buffer
	fmt.Fprintf(&h, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n", path, target.Host)
	for _, line := range headers {
		h.WriteString(line)
		h.WriteString("\r\n")
	}
	h.WriteString("Content-Length: ")
	return &builder{
		head:  h.Bytes(),
		parts: bytes.Split([]byte(template), []byte("{i}")),
		mod:   mod,
		pad:   pad,
	}
}

// clone shares the immutable parts and gets its own buffers (one per connection).
func (b *builder) clone() *builder {
	return &builder{head: b.head, parts: b.parts, mod: b.mod, pad: b.pad}
}

func (b *builder) build(counter int64) []byte {
	if b.mod > 0 {
		counter %= b.mod
	}
	b.body = append(b.body[:0], b.parts[0]...)
	for _, part := range b.parts[1:] {
		b.body = b.appendCounter(b.body, counter)
		b.body = append(b.body, part...)
	}
	b.req = append(b.req[:0], b.head...)
	b.req = strconv.AppendInt(b.req, int64(len(b.body)), 10)
	b.req = append(b.req, "\r\n\r\n"...)
	b.req = append(b.req, b.body...)
	return b.req
}

func (b *builder) appendCounter(dst []byte, counter int64) []byte {
	var digits [20]byte
	s := strconv.AppendInt(digits[:0], counter, 10)
	for i := len(s); i < b.pad; i++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}
