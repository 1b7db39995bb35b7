package testinfra

import (
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

func TestSQS(t *testing.T) {
	began := time.Now()
	q := SQS(t)
	t.Logf("SQS ready in %v: %s queue %s (%s)", time.Since(began), q.Endpoint, q.Queue, q.QueueURL)
	other := SQS(t)
	if other.Queue == q.Queue || other.Endpoint != q.Endpoint {
		t.Errorf("two calls: queues %s and %s at %s and %s", q.Queue, other.Queue, q.Endpoint, other.Endpoint)
	}
	if u, err := url.Parse(q.Endpoint); err != nil || u.Hostname() != "127.0.0.1" {
		t.Errorf("endpoint %s: want http://127.0.0.1:PORT", q.Endpoint)
	}
	c := q.Client()
	ctx := t.Context()
	qurl := aws.String(q.QueueURL)

	// receive reads until n messages arrived (or fails after a deadline).
	receive := func(n int) []types.Message {
		t.Helper()
		var out []types.Message
		for deadline := time.Now().Add(20 * time.Second); len(out) < n; {
			if time.Now().After(deadline) {
				t.Fatalf("received %d messages, want %d", len(out), n)
			}
			r, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: qurl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, r.Messages...)
		}
		if len(out) != n {
			t.Fatalf("received %d messages, want %d", len(out), n)
		}
		return out
	}
	bodies := func(ms []types.Message) []string {
		var bs []string
		for _, m := range ms {
			bs = append(bs, aws.ToString(m.Body))
		}
		slices.Sort(bs)
		return bs
	}

	// One message: send, receive, delete.
	sent, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: qurl, MessageBody: aws.String(`{"Records":[]}`)})
	if err != nil {
		t.Fatal(err)
	}
	ms := receive(1)
	if aws.ToString(ms[0].Body) != `{"Records":[]}` || aws.ToString(ms[0].MessageId) != aws.ToString(sent.MessageId) {
		t.Errorf("received %q (id %s), sent id %s", aws.ToString(ms[0].Body), aws.ToString(ms[0].MessageId), aws.ToString(sent.MessageId))
	}
	if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: qurl, ReceiptHandle: ms[0].ReceiptHandle}); err != nil {
		t.Fatal(err)
	}

	// A batch: send 5, receive them, delete them in one batch.
	var entries []types.SendMessageBatchRequestEntry
	var want []string
	for i := range 5 {
		b := fmt.Sprintf("m%d", i)
		want = append(want, b)
		entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), MessageBody: aws.String(b)})
	}
	bs, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: qurl, Entries: entries})
	if err != nil {
		t.Fatal(err)
	}
	// goaws v0.5.4 names the entries of its JSON answer
	// SendMessageBatchResultEntry, not Successful: the SDK sees neither
	// list, although every message was queued (checked below).
	if (len(bs.Successful) != 5 && len(bs.Successful) != 0) || len(bs.Failed) != 0 {
		t.Fatalf("batch send: %d ok, %d failed", len(bs.Successful), len(bs.Failed))
	}
	ms = receive(5)
	if got := bodies(ms); !slices.Equal(got, want) {
		t.Errorf("received %v, want %v", got, want)
	}
	var dels []types.DeleteMessageBatchRequestEntry
	for i, m := range ms {
		dels = append(dels, types.DeleteMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), ReceiptHandle: m.ReceiptHandle})
	}
	bd, err := c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: qurl, Entries: dels})
	if err != nil {
		t.Fatal(err)
	}
	if len(bd.Successful) != 5 || len(bd.Failed) != 0 {
		t.Fatalf("batch delete: %d ok, %d failed", len(bd.Successful), len(bd.Failed))
	}

	// Deleted means gone, even after the visibility timeout: make the one
	// message left visible again at once, and see only that one.
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: qurl, MessageBody: aws.String("last")}); err != nil {
		t.Fatal(err)
	}
	ms = receive(1)
	if _, err := c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: qurl, ReceiptHandle: ms[0].ReceiptHandle, VisibilityTimeout: 0}); err != nil {
		t.Fatal(err)
	}
	if got := bodies(receive(1)); !slices.Equal(got, []string{"last"}) {
		t.Errorf("after delete and visibility 0: %v, want [last]", got)
	}

	// The other queue saw none of it.
	r, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(other.QueueURL), MaxNumberOfMessages: 10})
	if err != nil || len(r.Messages) != 0 {
		t.Errorf("other queue: %d messages, %v", len(r.Messages), err)
	}
}
