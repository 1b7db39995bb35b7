package testinfra

import (
	"context"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// consume polls cl until n records arrived (or fails after a deadline).
func consume(t *testing.T, cl *kgo.Client, n int) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d records, want %d: %v", len(out), n, ctx.Err())
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		out = append(out, fs.Records()...)
	}
	if len(out) != n {
		t.Fatalf("consumed %d records, want %d", len(out), n)
	}
	return out
}

func values(rs []*kgo.Record) []string {
	var vs []string
	for _, r := range rs {
		vs = append(vs, string(r.Value))
	}
	slices.Sort(vs)
	return vs
}

func TestKafka(t *testing.T) {
	began := time.Now()
	k := Kafka(t)
	t.Logf("Kafka ready in %v: %v topic %s", time.Since(began), k.Brokers, k.Topic)
	other := Kafka(t)
	if other.Topic == k.Topic || !slices.Equal(other.Brokers, k.Brokers) {
		t.Errorf("two calls: topics %s and %s at %v and %v", k.Topic, other.Topic, k.Brokers, other.Brokers)
	}
	// A fixed loopback port that any client can dial.
	host, _, err := net.SplitHostPort(k.Brokers[0])
	if err != nil || host != "127.0.0.1" {
		t.Errorf("broker %s: want 127.0.0.1:PORT", k.Brokers[0])
	}
	if c, err := net.DialTimeout("tcp", k.Brokers[0], 5*time.Second); err != nil {
		t.Errorf("dial %s: %v", k.Brokers[0], err)
	} else {
		c.Close()
	}
	ctx := t.Context()

	// Produce to every partition; consume in a group; commit.
	prod := k.Client(t, kgo.DefaultProduceTopic(k.Topic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	var want []string
	for i := range 9 {
		v := fmt.Sprintf("v%d", i)
		want = append(want, v)
		if err := prod.ProduceSync(ctx, &kgo.Record{Key: []byte(v), Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	group := "g-" + k.Topic
	cons := k.Client(t, kgo.ConsumeTopics(k.Topic), kgo.ConsumerGroup(group), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if got := values(consume(t, cons, 9)); !slices.Equal(got, want) {
		t.Errorf("consumed %v, want %v", got, want)
	}
	parts := map[int32]bool{}
	if err := cons.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	cons.Close()
	offs, err := k.admin.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	var committed int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == k.Topic {
			committed += o.At
			parts[o.Partition] = true
		}
	})
	if committed != 9 || len(parts) != KafkaPartitions {
		t.Errorf("group %s committed %d records over %d partitions, want 9 over %d", group, committed, len(parts), KafkaPartitions)
	}

	// The group resumes after its commit: only the new record arrives.
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("late")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	again := k.Client(t, kgo.ConsumeTopics(k.Topic), kgo.ConsumerGroup(group), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if got := values(consume(t, again, 1)); !slices.Equal(got, []string{"late"}) {
		t.Errorf("after the commit: consumed %v, want [late]", got)
	}
}

func TestKafkaTransactions(t *testing.T) {
	k := Kafka(t)
	topic := k.NewTopic(t, 1) // one partition: the commit after the abort passes it
	ctx := t.Context()
	tx := k.Client(t, kgo.TransactionalID("tx-"+topic), kgo.DefaultProduceTopic(topic))
	txn := func(commit bool, vs ...string) {
		t.Helper()
		if err := tx.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			if err := tx.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	txn(true, "a1", "a2", "a3")
	txn(false, "b1", "b2")
	txn(true, "c1")

	committed := k.Client(t, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if got := values(consume(t, committed, 4)); !slices.Equal(got, []string{"a1", "a2", "a3", "c1"}) {
		t.Errorf("read committed: %v, want [a1 a2 a3 c1]", got)
	}
	// Read uncommitted sees the aborted records too: they were written.
	all := k.Client(t, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadUncommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if got := values(consume(t, all, 6)); !slices.Equal(got, []string{"a1", "a2", "a3", "b1", "b2", "c1"}) {
		t.Errorf("read uncommitted: %v", got)
	}
}
