package fetch

import (
	"sync"

	"github.com/fwagent/fwagent/verify"
)

const (
	// pipeChunk is how many bytes are handed to the hasher at once. It is
	// independent of the copy buffer: small reads and writes keep the
	// kernel's copies cheap (see DefaultBufferSize), while one hand-off per
	// 256 KiB keeps the goroutine switches (futex wake-ups) few.
	pipeChunk = 256 << 10
	// pipeDepth is how many chunks may wait for the hasher: enough to
	// absorb jitter between the network and the hash, small enough to bound
	// memory (pipeDepth * pipeChunk = 2 MiB).
	pipeDepth = 8
)

// pipeSink feeds a Sink from its own goroutine so hashing runs in parallel
// with receiving and writing the file, instead of in series with them. It
// copies each Write (the caller reuses its buffer) into a chunk, hands full
// chunks over, and keeps the order. Facts waits until every byte written so
// far has reached the inner Sink. Close must be called to end the
// goroutine. Write, Facts and Close are called from one goroutine.
type pipeSink struct {
	inner Sink
	ch    chan []byte // a nil entry is a barrier, acknowledged on ack
	ack   chan struct{}
	cur   []byte // the chunk being filled, not yet handed over
	pool  sync.Pool
	once  sync.Once
}

func newPipeSink(inner Sink) *pipeSink {
	p := &pipeSink{inner: inner, ch: make(chan []byte, pipeDepth), ack: make(chan struct{})}
	p.pool.New = func() any { b := make([]byte, 0, pipeChunk); return &b }
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
		b = b[:0]
		p.pool.Put(&b)
	}
}

// Write queues a copy of b for the inner Sink.
func (p *pipeSink) Write(b []byte) (int, error) {
	for rest := b; len(rest) > 0; {
		if p.cur == nil {
			p.cur = *(p.pool.Get().(*[]byte))
		}
		n := min(len(rest), cap(p.cur)-len(p.cur))
		p.cur = append(p.cur, rest[:n]...)
		rest = rest[n:]
		if len(p.cur) == cap(p.cur) {
			p.flush()
		}
	}
	return len(b), nil
}

// flush hands the chunk being filled to the hasher.
func (p *pipeSink) flush() {
	if len(p.cur) > 0 {
		p.ch <- p.cur
	}
	p.cur = nil
}

// Facts waits for the queue to drain and returns the inner Sink's facts.
func (p *pipeSink) Facts() verify.ImageFacts {
	p.flush()
	p.ch <- nil
	<-p.ack
	return p.inner.Facts()
}

// Close ends the goroutine after the queued bytes were fed. Idempotent.
func (p *pipeSink) Close() {
	p.once.Do(func() {
		p.flush()
		close(p.ch)
	})
}
