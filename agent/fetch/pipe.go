package fetch

import (
	"sync"

	"github.com/fwagent/fwagent/verify"
)

// pipeDepth is how many buffers may wait for the hasher: enough to absorb
// jitter between the network and the hash, small enough to bound memory
// (pipeDepth * DefaultBufferSize = 2 MiB).
const pipeDepth = 8

// pipeSink feeds a Sink from its own goroutine so hashing runs in parallel
// with receiving and writing the file, instead of in series with them. It
// copies each Write (the caller reuses its buffer) and keeps the order.
// Facts waits until every byte written so far has reached the inner Sink.
// Close must be called to end the goroutine.
type pipeSink struct {
	inner Sink
	ch    chan []byte // a nil entry is a barrier, acknowledged on ack
	ack   chan struct{}
	pool  sync.Pool
	once  sync.Once
}

func newPipeSink(inner Sink) *pipeSink {
	p := &pipeSink{inner: inner, ch: make(chan []byte, pipeDepth), ack: make(chan struct{})}
	p.pool.New = func() any { b := make([]byte, DefaultBufferSize); return &b }
	go p.run()
	return p
}

func (p *pipeSink) run() {
	for b := range p.ch {
		if b == nil {
			p.ack <- struct{}{}
			continue
		}
		p.inner.Write(b)
		if cap(b) == DefaultBufferSize {
			b = b[:cap(b)]
			p.pool.Put(&b)
		}
	}
}

// Write queues a copy of b for the inner Sink.
func (p *pipeSink) Write(b []byte) (int, error) {
	for rest := b; len(rest) > 0; {
		buf := *(p.pool.Get().(*[]byte))
		n := copy(buf, rest)
		p.ch <- buf[:n]
		rest = rest[n:]
	}
	return len(b), nil
}

// Facts waits for the queue to drain and returns the inner Sink's facts.
func (p *pipeSink) Facts() verify.ImageFacts {
	p.ch <- nil
	<-p.ack
	return p.inner.Facts()
}

// Close ends the goroutine after the queued bytes were fed. Idempotent.
func (p *pipeSink) Close() {
	p.once.Do(func() { close(p.ch) })
}
