package pipeline

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
)

// DeadLetterTable is the table operators emit rejected records to. The
// sink writes it, append only, to the job's dead-letter Iceberg table, in
// the same checkpoint as the rest of the batch: a rejected record is
// neither lost nor written twice.
var DeadLetterTable = TableID{Namespace: "_sluice", Name: "dead_letters"}

// DeadLetterSchema is the shape of every dead-letter batch.
var DeadLetterSchema = &Schema{
	Table: DeadLetterTable,
	Columns: []Column{
		{Name: "source_table", Type: TypeString},
		{Name: "stage", Type: TypeString},
		{Name: "reason", Type: TypeString},
		{Name: "op", Type: TypeString},
		{Name: "position", Type: TypeString, Nullable: true},
		{Name: "event_time", Type: TypeTimestampTZ, Nullable: true},
		{Name: "raw", Type: TypeString, Nullable: true},
	},
	Version: 1,
}

// DeadLetter builds the dead-letter record for rec of schema s, rejected by
// stage (an operator name, or "decode") for reason. raw is the record as
// JSON: {"before": {...}, "after": {...}} by column name; pass a non-empty
// raw to keep the source's own bytes when they could not be decoded.
func DeadLetter(s *Schema, rec *Record, stage, reason string, raw string) Record {
	if raw == "" && rec != nil && s != nil {
		raw = RawJSON(s, rec)
	}
	var pos, op any
	var at any
	op = ""
	if rec != nil {
		op = rec.Op.String()
		if rec.Position != "" {
			pos = rec.Position
		}
		if !rec.EventTime.IsZero() {
			at = rec.EventTime.UTC()
		}
	}
	table := ""
	if s != nil {
		table = s.Table.String()
	}
	var rawV any
	if raw != "" {
		rawV = raw
	}
	out := Record{
		Op:    OpInsert,
		After: []any{table, stage, reason, op, pos, at, rawV},
	}
	if rec != nil {
		out.Position, out.EventTime = rec.Position, rec.EventTime
	}
	return out
}

// RawJSON renders a record's images by column name, for dead letters and
// error messages. Values keep their meaning: decimals as strings, binary
// as base64, times in RFC 3339.
func RawJSON(s *Schema, rec *Record) string {
	img := func(row []any) map[string]any {
		if row == nil {
			return nil
		}
		m := make(map[string]any, len(row))
		for i, v := range row {
			name := fmt.Sprintf("col%d", i)
			if i < len(s.Columns) {
				name = s.Columns[i].Name
			}
			m[name] = jsonValue(v)
		}
		return m
	}
	out := map[string]any{}
	if b := img(rec.Before); b != nil {
		out["before"] = b
	}
	if a := img(rec.After); a != nil {
		out["after"] = a
	}
	b, err := json.Marshal(out)
	if err != nil {
		return fmt.Sprintf("%v", out)
	}
	return string(b)
}

func jsonValue(v any) any {
	switch x := v.(type) {
	case Decimal:
		return x.String()
	case []byte:
		return base64.StdEncoding.EncodeToString(x)
	case time.Time:
		return x.Format(time.RFC3339Nano)
	case time.Duration:
		return x.String()
	}
	return v
}
