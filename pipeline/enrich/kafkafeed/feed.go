// Package kafkafeed reads one Kafka topic, every partition, from given
// offsets, without a consumer group: the edge between franz-go and the
// enrich operator's Kafka-fed stream dimensions, which keep the offsets in
// their own checkpointed state.
//
// A Feed is used by one goroutine. franz-go fetches in the background on
// goroutines of its own, which Close stops.
package kafkafeed

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Message is one record of the topic.
type Message struct {
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
}

// Feed consumes a topic.
type Feed struct {
	topic string
	cl    *kgo.Client
	adm   *kadm.Client
	// next is the offset of the next message per partition, as far as
	// messages were handed out.
	next map[int32]int64
	// lastPoll is when Drain last asked the client, to surface fetch
	// errors even while nothing is buffered.
	lastPoll time.Time
}

// MaxFetchBytes bounds a fetch response, and so what the client holds
// fetched ahead of Drain (it buffers one fetch per broker until polled).
const MaxFetchBytes = 16 << 20

// Open connects and assigns every partition the topic has now: partitions
// found in start resume at that offset (the next message to read), the
// others start at the beginning of the topic. An offset no longer in the
// topic (removed by retention) is an error at the next Drain, never a
// silent skip. Partitions added to the topic later are not read.
func Open(ctx context.Context, brokers []string, topic string, start map[int32]int64) (*Feed, error) {
	f := &Feed{topic: topic, next: map[int32]int64{}}
	admCl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, fmt.Errorf("kafka topic %s: %w", topic, err)
	}
	adm := kadm.NewClient(admCl)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		admCl.Close()
		return nil, fmt.Errorf("kafka topic %s at %s: list partitions: %w", topic, strings.Join(brokers, ","), err)
	}
	parts := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if off, ok := start[o.Partition]; ok {
			parts[o.Partition] = kgo.NewOffset().At(off)
			f.next[o.Partition] = off
		} else {
			parts[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	if len(parts) == 0 {
		admCl.Close()
		return nil, fmt.Errorf("kafka topic %s at %s: no partitions (does the topic exist?)", topic, strings.Join(brokers, ","))
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
		kgo.ConsumeResetOffset(kgo.NoResetOffset()),
		kgo.FetchMaxBytes(MaxFetchBytes),
		kgo.FetchMaxWait(100*time.Millisecond),
	)
	if err != nil {
		admCl.Close()
		return nil, fmt.Errorf("kafka topic %s: %w", topic, err)
	}
	f.cl, f.adm = cl, adm
	return f, nil
}

// Topic is the topic read.
func (f *Feed) Topic() string { return f.topic }

// Next returns the offset of the next message per partition: for each
// partition a message was read from (or a start offset was given for),
// the offset after the last one handed out.
func (f *Feed) Next() map[int32]int64 {
	out := make(map[int32]int64, len(f.next))
	for p, o := range f.next {
		out[p] = o
	}
	return out
}

// pollEvery is how often Drain asks the client even though it has nothing
// buffered, so that a fetch error (an offset out of range) surfaces.
const pollEvery = 100 * time.Millisecond

// Drain hands what the client has fetched so far to apply, in offset
// order per partition, without waiting for more. An error of apply stops
// it; the messages after the failed one stay unread.
func (f *Feed) Drain(ctx context.Context, apply func([]Message) error) error {
	for {
		if f.cl.BufferedFetchRecords() == 0 && time.Since(f.lastPoll) < pollEvery {
			return nil
		}
		n, err := f.poll(ctx, time.Millisecond, apply)
		if err != nil || n == 0 {
			return err
		}
	}
}

// CatchUp reads until every partition reached the end offset it had when
// CatchUp was called, or until nothing arrived for idle (a partition
// ending in transaction markers or compacted away has no message at its
// last offsets).
func (f *Feed) CatchUp(ctx context.Context, idle time.Duration, apply func([]Message) error) error {
	ends, err := f.adm.ListEndOffsets(ctx, f.topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("kafka topic %s: list end offsets: %w", f.topic, err)
	}
	behind := func() bool {
		b := false
		ends.Each(func(o kadm.ListedOffset) {
			if f.next[o.Partition] < o.Offset {
				b = true
			}
		})
		return b
	}
	quiet := time.Now()
	for behind() {
		if time.Since(quiet) > idle {
			return nil
		}
		n, err := f.poll(ctx, 50*time.Millisecond, apply)
		if err != nil {
			return err
		}
		if n > 0 {
			quiet = time.Now()
		}
	}
	return nil
}

func (f *Feed) poll(ctx context.Context, wait time.Duration, apply func([]Message) error) (int, error) {
	pctx, cancel := context.WithTimeout(ctx, wait)
	fs := f.cl.PollRecords(pctx, 10_000)
	cancel()
	f.lastPoll = time.Now()
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var errs []error
	fs.EachError(func(t string, p int32, err error) {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return
		}
		errs = append(errs, fmt.Errorf("kafka topic %s partition %d: %w", t, p, err))
	})
	if len(errs) > 0 {
		return 0, errors.Join(errs...)
	}
	var msgs []Message
	fs.EachRecord(func(r *kgo.Record) {
		msgs = append(msgs, Message{Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value})
	})
	if len(msgs) == 0 {
		return 0, nil
	}
	// apply sees the messages in order per partition; next advances only
	// past what it accepted.
	if err := apply(msgs); err != nil {
		return 0, err
	}
	for _, m := range msgs {
		f.next[m.Partition] = m.Offset + 1
	}
	return len(msgs), nil
}

// Close stops the client and its goroutines.
func (f *Feed) Close() {
	if f.cl != nil {
		f.cl.Close()
	}
	if f.adm != nil {
		f.adm.Close()
	}
	f.cl, f.adm = nil, nil
}
