package enrich

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/sluice-cdc/sluice/checkpoint"
	"github.com/sluice-cdc/sluice/pipeline"
	"github.com/sluice-cdc/sluice/pipeline/enrich/kafkafeed"
)

// A Kafka-fed stream dimension keeps, next to its rows and shape, the
// offsets it has applied, in the same store and so in the same
// checkpoint:
//
//	'o' name   JSON {"partition": next offset, ...}
const prefixOffsets = 'o'

// CatchUpIdle bounds the catch-up of a Kafka-fed dimension before the
// operator's first batch: it reads up to the topic's end offsets as of
// then, or until nothing arrived for this long.
const CatchUpIdle = 2 * time.Second

// kafkaFeed is the part of a stream dimension fed from a Kafka topic.
type kafkaFeed struct {
	feed    *kafkafeed.Feed
	offKey  []byte
	offsets map[int32]int64 // next offset per partition, as applied
	caught  bool            // the catch-up before the first batch is done
}

func (d *dimension) kafkaDescribe() string {
	return fmt.Sprintf("dimension %s (stream of kafka topic %s)", d.cfg.Name, d.cfg.Stream.Kafka.Topic)
}

// openKafkaFeed reads the applied offsets from the store and assigns the
// topic's partitions from there (from the start on a fresh start).
func (d *dimension) openKafkaFeed(ctx context.Context, st *checkpoint.StateDB) error {
	k := &kafkaFeed{offKey: append([]byte{prefixOffsets}, d.cfg.Name...), offsets: map[int32]int64{}}
	v, ok, err := st.Get(k.offKey, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", d.describe(), err)
	}
	if ok {
		var m map[string]int64
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("%s: stored offsets: %w", d.describe(), err)
		}
		for p, o := range m {
			n, err := strconv.ParseInt(p, 10, 32)
			if err != nil {
				return fmt.Errorf("%s: stored offsets: partition %q", d.describe(), p)
			}
			k.offsets[int32(n)] = o
		}
	}
	kc := d.cfg.Stream.Kafka
	if k.feed, err = kafkafeed.Open(ctx, kc.Brokers, kc.Topic, k.offsets); err != nil {
		return fmt.Errorf("%s: %w", d.describe(), err)
	}
	d.kafka = k
	return nil
}

// pullKafka applies what the topic has for the dimension: everything up
// to the topic's end the first time (so that a restarted or new job looks
// keys up in a dimension that is as current as the topic), and then what
// the client has fetched since, without waiting. Malformed messages become
// dead letters in *dead.
func (o *Operator) pullKafka(ctx context.Context, d *dimension, dead *[]pipeline.Record) error {
	k := d.kafka
	apply := func(msgs []kafkafeed.Message) error {
		n, err := d.applyKafka(msgs, o.store, dead)
		o.stats.applied.Add(int64(n))
		return err
	}
	if !k.caught {
		if err := k.feed.CatchUp(ctx, CatchUpIdle, apply); err != nil {
			return fmt.Errorf("%s: %w", d.describe(), err)
		}
		k.caught = true
		return nil
	}
	if err := k.feed.Drain(ctx, apply); err != nil {
		return fmt.Errorf("%s: %w", d.describe(), err)
	}
	return nil
}

// kchange is one message, decoded.
type kchange struct {
	del    bool
	key    string         // the key as text (a JSON number's digits)
	num    bool           // key was a JSON number
	oldKey *string        // an update's before-image key, if it has one
	after  map[string]any // the row of an upsert
}

func (d *dimension) applyKafka(msgs []kafkafeed.Message, st *checkpoint.StateDB, dead *[]pipeline.Record) (int, error) {
	k := d.kafka
	n := 0
	for _, m := range msgs {
		k.offsets[m.Partition] = m.Offset + 1
		c, err := d.decodeKafka(m)
		if err == nil {
			var w int
			w, err = d.applyChange(c, st)
			n += w
		}
		if err != nil {
			var fatal storeError
			if errors.As(err, &fatal) {
				return n, fatal.err
			}
			pos := fmt.Sprintf("kafka topic %s partition %d offset %d", k.feed.Topic(), m.Partition, m.Offset)
			reason := fmt.Sprintf("%s: malformed message at %s: %v", d.kafkaDescribe(), pos, err)
			raw := string(m.Value)
			if len(m.Value) == 0 {
				raw = "key: " + string(m.Key)
			}
			dl := pipeline.DeadLetter(nil, nil, Name, reason, raw)
			dl.Position = pos
			dl.After[0] = "kafka." + k.feed.Topic()
			*dead = append(*dead, dl)
		}
	}
	offs := make(map[string]int64, len(k.offsets))
	for p, o := range k.offsets {
		offs[strconv.Itoa(int(p))] = o
	}
	b, err := json.Marshal(offs)
	if err != nil {
		return n, err
	}
	if err := st.Set(k.offKey, b); err != nil {
		return n, err
	}
	return n, st.Commit()
}

// storeError is a failure of the store, not of the message.
type storeError struct{ err error }

func (e storeError) Error() string { return e.err.Error() }

func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("more than one JSON value")
	}
	return v, nil
}

// decodeKafka reads a message: a JSON object holding the row (the key in
// its Key field), optionally a Debezium envelope (before/after/op, at the
// top or in "payload"), or a tombstone (no value) deleting the message
// key.
func (d *dimension) decodeKafka(m kafkafeed.Message) (kchange, error) {
	keyName := d.cfg.Stream.Key
	if len(bytes.TrimSpace(m.Value)) == 0 || string(bytes.TrimSpace(m.Value)) == "null" {
		return d.tombstone(m)
	}
	v, err := decodeJSON(m.Value)
	if err != nil {
		return kchange{}, fmt.Errorf("value: %w", err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return kchange{}, fmt.Errorf("value is a JSON %s, not an object", jsonKind(v))
	}
	if _, has := obj[keyName]; !has {
		if p, has := obj["payload"]; has {
			if p == nil {
				return d.tombstone(m) // Debezium's JSON converter with schemas
			}
			if obj, ok = p.(map[string]any); !ok {
				return kchange{}, fmt.Errorf("payload is a JSON %s, not an object", jsonKind(p))
			}
		}
	}
	op, isEnv := obj["op"].(string)
	if _, has := obj[keyName]; has || !isEnv {
		// A plain row.
		c := kchange{after: obj}
		c.key, c.num, err = d.imageKey(obj)
		return c, err
	}
	image := func(name string) (map[string]any, error) {
		switch x := obj[name].(type) {
		case nil:
			return nil, nil
		case map[string]any:
			return x, nil
		default:
			return nil, fmt.Errorf("%s is a JSON %s, not an object", name, jsonKind(x))
		}
	}
	before, err := image("before")
	if err != nil {
		return kchange{}, err
	}
	after, err := image("after")
	if err != nil {
		return kchange{}, err
	}
	switch op {
	case "c", "r", "u":
		if after == nil {
			return kchange{}, fmt.Errorf("op %q without an after image", op)
		}
		c := kchange{after: after}
		if c.key, c.num, err = d.imageKey(after); err != nil {
			return kchange{}, fmt.Errorf("after: %w", err)
		}
		if before != nil {
			if _, has := before[keyName]; has {
				old, _, err := d.imageKey(before)
				if err != nil {
					return kchange{}, fmt.Errorf("before: %w", err)
				}
				c.oldKey = &old
			}
		}
		return c, nil
	case "d":
		if before == nil {
			return d.tombstone(m)
		}
		c := kchange{del: true}
		if c.key, c.num, err = d.imageKey(before); err != nil {
			return kchange{}, fmt.Errorf("before: %w", err)
		}
		return c, nil
	}
	return kchange{}, fmt.Errorf("unsupported op %q (want c, r, u or d)", op)
}

// tombstone reads the key of a message without a value: the JSON of the
// key value (a number, a string, or an object holding the key field, as
// Debezium writes keys), or else the key as plain text.
func (d *dimension) tombstone(m kafkafeed.Message) (kchange, error) {
	if len(m.Key) == 0 {
		return kchange{}, errors.New("a tombstone (no value) without a message key")
	}
	v, err := decodeJSON(m.Key)
	if err != nil {
		return kchange{del: true, key: string(m.Key)}, nil
	}
	if obj, ok := v.(map[string]any); ok {
		if _, has := obj[d.cfg.Stream.Key]; !has {
			if p, ok := obj["payload"].(map[string]any); ok {
				obj = p
			}
		}
		k, num, err := d.imageKey(obj)
		if err != nil {
			return kchange{}, fmt.Errorf("message key: %w", err)
		}
		return kchange{del: true, key: k, num: num}, nil
	}
	switch x := v.(type) {
	case json.Number:
		return kchange{del: true, key: string(x), num: true}, nil
	case string:
		return kchange{del: true, key: x}, nil
	}
	return kchange{}, fmt.Errorf("message key is a JSON %s, not a key value", jsonKind(v))
}

func (d *dimension) imageKey(img map[string]any) (string, bool, error) {
	name := d.cfg.Stream.Key
	switch x := img[name].(type) {
	case json.Number:
		return string(x), true, nil
	case string:
		return x, false, nil
	case nil:
		if _, has := img[name]; has {
			return "", false, fmt.Errorf("key field %q is null", name)
		}
		return "", false, fmt.Errorf("no key field %q", name)
	default:
		return "", false, fmt.Errorf("key field %q is a JSON %s", name, jsonKind(x))
	}
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	}
	return "object"
}

// learnJSON fixes the dimension's types from its first row: an integer
// key is a long, a text key a string; columns holding integers are longs,
// other numbers doubles, booleans booleans, and strings, objects, arrays
// and NULLs (absent fields included) strings.
func (d *dimension) learnJSON(c kchange) error {
	key := pipeline.Column{Name: d.cfg.Stream.Key, Type: pipeline.TypeString}
	if c.num {
		if _, err := strconv.ParseInt(c.key, 10, 64); err != nil {
			return fmt.Errorf("key %s: a key must be an integer or a string", c.key)
		}
		key.Type = pipeline.TypeInt64
	}
	cols := make([]pipeline.Column, len(d.cfg.Columns))
	for i, name := range d.cfg.Columns {
		t := pipeline.TypeString
		switch x := c.after[name].(type) {
		case bool:
			t = pipeline.TypeBool
		case json.Number:
			t = pipeline.TypeFloat64
			if _, err := strconv.ParseInt(string(x), 10, 64); err == nil {
				t = pipeline.TypeInt64
			}
		}
		cols[i] = pipeline.Column{Name: name, Type: t, Nullable: true}
	}
	return d.learn(key, cols)
}

// jsonValue converts a JSON value to the type of column c.
func jsonValue(c pipeline.Column, v any) (any, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case json.Number:
		return convert(c, string(x))
	case map[string]any, []any:
		b, err := json.Marshal(x)
		if err != nil {
			return nil, err
		}
		return convert(c, string(b))
	}
	return convert(c, v)
}

// applyChange writes one decoded message to the store; the cache follows.
func (d *dimension) applyChange(c kchange, st *checkpoint.StateDB) (int, error) {
	if !d.stream.known {
		if c.del {
			return 0, nil // nothing was stored yet
		}
		if err := d.learnJSON(c); err != nil {
			return 0, err
		}
		if err := d.storeMeta(st); err != nil {
			return 0, storeError{err}
		}
	}
	k, ok := d.keyOf(c.key)
	if !ok {
		return 0, fmt.Errorf("key %q cannot be a key of the %s key column %s", c.key, d.kind, d.keyName())
	}
	n := 0
	del := func(k lookupKey) error {
		if err := st.Delete(d.storeKey(k)); err != nil {
			return storeError{err}
		}
		if d.cache.Contains(k) {
			d.cache.Add(k, &entry{expires: never})
		}
		n++
		return nil
	}
	if c.del {
		return n, del(k)
	}
	row := make([]any, len(d.cols))
	for j, col := range d.cols {
		v, err := jsonValue(col, c.after[col.Name])
		if err != nil {
			return 0, fmt.Errorf("key %s: column %s (%s): %w", d.render(k), col.Name, col.Type, err)
		}
		row[j] = v
	}
	if c.oldKey != nil {
		if old, ok := d.keyOf(*c.oldKey); ok && old != k {
			if err := del(old); err != nil {
				return n, err
			}
		}
	}
	sd := d.stream
	var err error
	if sd.vbuf, err = encodeRow(sd.vbuf[:0], row); err != nil {
		return n, fmt.Errorf("key %s: %w", d.render(k), err)
	}
	if err := st.Set(d.storeKey(k), sd.vbuf); err != nil {
		return n, storeError{err}
	}
	if d.cache.Contains(k) {
		d.cache.Add(k, &entry{row: slices.Clone(row), expires: never})
	}
	return n + 1, nil
}
