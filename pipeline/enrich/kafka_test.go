package enrich

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-cdc/sluice/internal/testinfra"
	"github.com/sluice-cdc/sluice/pipeline"
)

// kafkaDim is a customers dimension fed from a fresh topic.
type kafkaDim struct {
	k  *testinfra.KafkaTopic
	cl *kgo.Client
}

func newKafkaDim(t *testing.T) *kafkaDim {
	k := testinfra.Kafka(t)
	return &kafkaDim{k: k, cl: k.Client(t)}
}

func (kd *kafkaDim) dims() map[string]Dimension {
	return map[string]Dimension{"customers": {
		Stream:  &Stream{Kafka: &KafkaTopic{Brokers: kd.k.Brokers, Topic: kd.k.Topic}, Key: "id"},
		Columns: []string{"name", "tier"},
		Cache:   Cache{Size: 100},
	}}
}

func (kd *kafkaDim) op(t *testing.T, dir string) *Operator {
	t.Helper()
	op, err := New(kd.dims(), []Rule{custRule(MissingNull)}, WithStateDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	return op
}

// produce writes messages, each "key|value" (no "|": a value without a
// key; an empty value is a tombstone), and returns where they went.
func (kd *kafkaDim) produce(t *testing.T, msgs ...string) []*kgo.Record {
	t.Helper()
	var recs []*kgo.Record
	for _, m := range msgs {
		r := &kgo.Record{Topic: kd.k.Topic}
		key, val, ok := strings.Cut(m, "|")
		if !ok {
			key, val = "", m
		}
		if key != "" {
			r.Key = []byte(key)
		}
		if val != "" {
			r.Value = []byte(val)
		}
		recs = append(recs, r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kd.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	return recs
}

func row(id int, name string, tier int) string {
	return fmt.Sprintf(`{"id":%d,"name":%q,"tier":%d}`, id, name, tier)
}

// keyed is a message keyed like a Debezium key, so that one id's changes
// stay in one partition, in order.
func keyed(id int, value string) string { return fmt.Sprintf(`{"id":%d}|%s`, id, value) }

// waitName processes fact rows until customer id's name is want: the
// operator takes in what the client has fetched, without waiting, so a
// message just produced shows up within a few batches.
func waitName(t *testing.T, op *Operator, id int64, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := name(t, op, id)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("customer %d: %s, want %s", id, got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestKafkaApplyAndLookup(t *testing.T) {
	kd := newKafkaDim(t)
	kd.produce(t,
		keyed(1, row(1, "ann", 1)),
		keyed(2, row(2, "bob", 2)),
		keyed(3, row(3, "cy", 3)),
		row(4, "dee", 4), // no message key: the value's id is the key
	)
	op := kd.op(t, t.TempDir())
	openState(t, op, nil)
	// The first batch catches up with the whole topic: no waiting.
	out := process(t, op, batchOf(ordersSchema(), ins(10, int32(1)), ins(11, int32(4)), ins(12, int32(9))))
	if len(out) != 1 {
		t.Fatalf("emitted %d batches", len(out))
	}
	want := []string{"[10 1 n ann 1]", "[11 4 n dee 4]", "[12 9 n <nil> <nil>]"}
	for i, r := range out[0].Records {
		if got := fmt.Sprint(r.After); got != want[i] {
			t.Errorf("record %d: %s, want %s", i, got, want[i])
		}
	}
	if c := out[0].Schema.Columns[4]; c.Name != "customer_tier" || c.Type != pipeline.TypeInt64 || !c.Nullable {
		t.Errorf("a JSON integer column is a nullable long: %+v", c)
	}
	if c := out[0].Schema.Columns[3]; c.Type != pipeline.TypeString {
		t.Errorf("a JSON string column is a string: %+v", c)
	}

	// Messages that arrive between batches are seen by later batches:
	// an update, a tombstone with a JSON key, a tombstone with a plain
	// text key, Debezium envelopes at the top and inside payload.
	kd.produce(t,
		keyed(1, row(1, "anna", 5)),
		`{"id":2}|`,
		`3|`,
		keyed(5, `{"before":null,"after":{"id":5,"name":"eve","tier":1},"op":"c","ts_ms":1}`),
		keyed(4, `{"schema":{},"payload":{"before":{"id":4,"name":"dee","tier":4},"after":{"id":4,"name":"dora","tier":4},"op":"u"}}`),
	)
	waitName(t, op, 5, "eve")
	waitName(t, op, 4, "dora")
	waitName(t, op, 1, "anna")
	for _, id := range []int64{2, 3} {
		if got := name(t, op, id); got != "<null>" {
			t.Errorf("deleted customer %d: %s", id, got)
		}
	}
	// A Debezium delete, and an update that moves a row to another key.
	kd.produce(t,
		keyed(5, `{"payload":{"before":{"id":5,"name":"eve","tier":1},"after":null,"op":"d"}}`),
		keyed(4, `{"before":{"id":4,"name":"dora","tier":4},"after":{"id":6,"name":"dora","tier":4},"op":"u"}`),
	)
	waitName(t, op, 6, "dora")
	waitName(t, op, 5, "<null>")
	if got := name(t, op, 4); got != "<null>" {
		t.Errorf("the old key of a moved row: %s", got)
	}
	if s := op.Stats(); s.StreamChanges != 4+5+3 || s.DeadLettered != 0 {
		t.Errorf("stats: %+v", s)
	}
}

func TestKafkaSnapshotRestore(t *testing.T) {
	kd := newKafkaDim(t)
	dir := t.TempDir()
	ctx := context.Background()
	var msgs []string
	for i := 1; i <= 30; i++ {
		msgs = append(msgs, keyed(i, row(i, fmt.Sprintf("v1-%d", i), i)))
	}
	kd.produce(t, msgs...)
	op := kd.op(t, dir)
	openState(t, op, nil)
	waitName(t, op, 30, "v1-30")
	kd.produce(t, keyed(1, row(1, "v2-1", 1)), `{"id":2}|`)
	waitName(t, op, 1, "v2-1")
	waitName(t, op, 2, "<null>")
	st, err := op.Snapshot(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	// After the checkpoint: applied live, but not part of it.
	kd.produce(t, keyed(3, row(3, "live-3", 3)), keyed(1, row(1, "live-1", 1)))
	waitName(t, op, 3, "live-3")
	waitName(t, op, 1, "live-1")
	if err := op.Close(); err != nil {
		t.Fatal(err)
	}
	// Meanwhile, more arrives.
	kd.produce(t, keyed(4, row(4, "later-4", 4)), `5|`, keyed(31, row(31, "new-31", 31)))

	r := kd.op(t, dir)
	openState(t, r, st)
	// The checkpoint's store plus every message after it: the ones the
	// first operator had applied after the checkpoint, and the later ones.
	want := map[int64]string{1: "live-1", 2: "<null>", 3: "live-3", 4: "later-4", 5: "<null>", 6: "v1-6", 30: "v1-30", 31: "new-31"}
	for id, w := range want {
		if got := name(t, r, id); got != w {
			t.Errorf("restored: customer %d: %s, want %s", id, got, w)
		}
	}
	// Resumed at the checkpoint's offsets: only the five messages after it
	// were read again, not the 32 before.
	if s := r.Stats(); s.StreamChanges != 5 {
		t.Errorf("after the restore %d changes were applied, want the 5 after the checkpoint", s.StreamChanges)
	}
	// The restored types hold without a message of the old ones.
	out := process(t, r, batchOf(ordersSchema(), ins(1, int32(6))))
	if c := out[0].Schema.Columns[4]; c.Type != pipeline.TypeInt64 {
		t.Errorf("restored type: %+v", c)
	}
}

func TestKafkaMalformedIsDeadLettered(t *testing.T) {
	kd := newKafkaDim(t)
	recs := kd.produce(t,
		keyed(1, row(1, "ann", 1)),
		keyed(1, `not json`),
		keyed(1, `{"name":"no key"}`),
		keyed(1, `{"id":1,"name":"bad tier","tier":"high"}`),
		keyed(1, `{"op":"x","before":null,"after":null}`),
		keyed(1, row(1, "anna", 1)),
	)
	op := kd.op(t, t.TempDir())
	openState(t, op, nil)
	out := process(t, op, batchOf(ordersSchema(), ins(10, int32(1))))
	var dead *pipeline.Batch
	for _, b := range out {
		if b.Schema.Table == pipeline.DeadLetterTable {
			dead = b
		}
	}
	if dead == nil || len(dead.Records) != 4 {
		t.Fatalf("want 4 dead letters, got %v", out)
	}
	reason := pipeline.DeadLetterSchema.ColumnIndex("reason")
	for i, d := range dead.Records {
		m := recs[i+1]
		where := fmt.Sprintf("kafka topic %s partition %d offset %d", kd.k.Topic, m.Partition, m.Offset)
		if r := d.After[reason].(string); !strings.Contains(r, where) {
			t.Errorf("dead letter %d: %q does not name %s", i, r, where)
		}
		if d.Position != where {
			t.Errorf("dead letter %d: position %q", i, d.Position)
		}
	}
	// The messages after the malformed ones are applied.
	if got := name(t, op, 1); got != "anna" {
		t.Errorf("customer 1: %s", got)
	}
	if s := op.Stats(); s.DeadLettered != 4 {
		t.Errorf("stats: %+v", s)
	}
}

func TestKafkaTopicMissing(t *testing.T) {
	kd := newKafkaDim(t)
	dims := kd.dims()
	d := dims["customers"]
	d.Stream.Kafka.Topic = "no-such-topic-" + kd.k.Topic
	op, err := New(dims, []Rule{custRule(MissingNull)}, WithStateDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := op.Open(ctx, nil); err == nil || !strings.Contains(err.Error(), "no-such-topic") {
		t.Errorf("Open of a missing topic: %v", err)
	}
	_ = op.Close()
}

// Messages the checkpoint's offsets still need, removed from the topic
// (by retention, say): the restored dimension fails rather than skipping
// them.
func TestKafkaRestoreAfterRetentionFails(t *testing.T) {
	kd := newKafkaDim(t)
	dir := t.TempDir()
	ctx := context.Background()
	kd.produce(t, keyed(1, row(1, "ann", 1)))
	op := kd.op(t, dir)
	openState(t, op, nil)
	waitName(t, op, 1, "ann")
	st, err := op.Snapshot(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := op.Close(); err != nil {
		t.Fatal(err)
	}
	recs := kd.produce(t, keyed(1, row(1, "anna", 1)), keyed(1, row(1, "annie", 1)))
	// Remove all but the last message of the partition.
	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: kd.k.Topic, Partition: recs[1].Partition, At: recs[1].Offset})
	resp, err := kadm.NewClient(kd.cl).DeleteRecords(ctx, offs)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	r := kd.op(t, dir)
	openState(t, r, st)
	_, err = tryProcess(r, batchOf(ordersSchema(), ins(10, int32(1))))
	if err == nil || !strings.Contains(err.Error(), kd.k.Topic) || !strings.Contains(err.Error(), "OFFSET_OUT_OF_RANGE") {
		t.Errorf("restore past retention: %v, want an offset out of range error naming the topic", err)
	}
}

// An empty topic teaches no types: a fact batch that needs them fails
// saying so, and passes once a row arrived.
func TestKafkaTypesUnknown(t *testing.T) {
	kd := newKafkaDim(t)
	op := kd.op(t, t.TempDir())
	openState(t, op, nil)
	_, err := tryProcess(op, batchOf(ordersSchema(), ins(10, int32(1))))
	if err == nil || !strings.Contains(err.Error(), "its topic has had no row yet") {
		t.Fatalf("fact batch before any row: %v", err)
	}
	kd.produce(t, keyed(1, `{"id":1,"name":"ann","tier":1.5}`))
	deadline := time.Now().Add(15 * time.Second)
	var out []*pipeline.Batch
	for out, err = tryProcess(op, batchOf(ordersSchema(), ins(10, int32(1)))); err != nil; out, err = tryProcess(op, batchOf(ordersSchema(), ins(10, int32(1)))) {
		if time.Now().After(deadline) {
			t.Fatalf("the first row did not teach the types: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := out[0].Records[0].After[3]; got != "ann" {
		t.Errorf("customer 1: %v", got)
	}
	if c := out[0].Schema.Columns[4]; c.Type != pipeline.TypeFloat64 {
		t.Errorf("a JSON non-integer column is a double: %+v", c)
	}
}
