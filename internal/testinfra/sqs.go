package testinfra

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// SQSQueue is a queue of its own for one test, on an SQS-compatible server
// shared by the test binary (locally goaws, which speaks the JSON protocol
// of aws-sdk-go-v2's service/sqs and ignores credentials).
//
// Talk to Endpoint (BaseEndpoint in the SDK) and pass QueueURL only as the
// API's QueueUrl parameter: goaws makes up URLs whose host,
// REGION.127.0.0.1, does not resolve. goaws v0.5.4's SendMessageBatch
// queues every message but answers with lists the SDK does not read
// (Successful and Failed come back empty); DeleteMessageBatch answers
// properly.
type SQSQueue struct {
	// Endpoint is the base URL, http://127.0.0.1:PORT.
	Endpoint  string
	Region    string
	AccessKey string
	SecretKey string
	// Queue is the queue's name; QueueURL is what the server returned for
	// it (the QueueUrl of every call on the queue).
	Queue    string
	QueueURL string
}

// Client is an aws-sdk-go-v2 SQS client for the server: BaseEndpoint,
// static credentials.
func (q *SQSQueue) Client() *sqs.Client {
	return newSQSClient(q.Endpoint, q.Region, q.AccessKey, q.SecretKey)
}

func newSQSClient(endpoint, region, access, secret string) *sqs.Client {
	return sqs.New(sqs.Options{
		Region:       region,
		BaseEndpoint: aws.String(endpoint),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: access, SecretAccessKey: secret, Source: "testinfra"}, nil
		}),
	})
}

const (
	sqsAccess  = "sluicetest"
	sqsSecret  = "sluicetest-secret"
	sqsRegion  = "us-east-1"
	sqsAccount = "100010001000"
	// GoawsInstall is how to build the SQS server (.ci/run does this):
	// from the tools module that pins it, because the module proxy
	// refuses go install goaws@v0.5.4.
	GoawsInstall = `(cd tools/goaws && go build -o "$(go env GOPATH)/bin/goaws" github.com/Admiral-Piett/goaws/app/cmd)`
)

type sqsServer struct {
	endpoint string
	client   *sqs.Client
	what     string        // for messages: "goaws (pid N)" or a container
	tail     func() string // the server's log tail, for messages
}

var sqsShared, sqsDocker shared[*sqsServer]

// SQS returns a fresh queue on this test binary's SQS server (goaws
// locally, LocalStack in a container), starting the server on first use. The queue is deleted when the test ends.
func SQS(t testing.TB) *SQSQueue {
	t.Helper()
	srv, ok := fromDocker(t, &sqsDocker, "LocalStack (SQS)", startLocalStackContainer)
	if !ok {
		bin, ok := lookBin("goaws", goBinDirs()...)
		if !ok {
			missing(t, "goaws (SQS-compatible server)", GoawsInstall)
		}
		var err error
		srv, err = sqsShared.get(func() (*sqsServer, error) { return startGoaws(bin) })
		if err != nil {
			t.Fatalf("testinfra: start goaws: %v", err)
		}
	}
	return srv.queue(t)
}

func (srv *sqsServer) queue(t testing.TB) *SQSQueue {
	t.Helper()
	// Queue names: 1-80 of letters, digits, hyphens and underscores.
	name := uniqueName(t, '-', 80)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := srv.client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name)})
	if err != nil {
		t.Fatalf("testinfra: %s: create queue %s: %v%s", srv.what, name, err, srv.tail())
	}
	url := aws.ToString(out.QueueUrl)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := srv.client.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(url)}); err != nil {
			t.Logf("testinfra: delete queue %s: %v", name, err)
		}
	})
	return &SQSQueue{Endpoint: srv.endpoint, Region: sqsRegion, AccessKey: sqsAccess, SecretKey: sqsSecret, Queue: name, QueueURL: url}
}

// goawsConfig is goaws.yaml: no queues or topics at start, the queue
// defaults of SQS (30 s visibility, no long polling by default).
const goawsConfig = `Local:
  Host: 127.0.0.1
  Port: %d
  Region: %s
  AccountId: "%s"
  LogToFile: false
  EnableDuplicates: false
  QueueAttributeDefaults:
    VisibilityTimeout: 30
    ReceiveMessageWaitTimeSeconds: 0
    MaximumMessageSize: 262144
  Queues: []
  Topics: []
`

// startGoaws starts goaws on a free port. goaws listens on every interface
// (it has no bind-address setting); the tests use only 127.0.0.1.
func startGoaws(bin string) (*sqsServer, error) {
	began := time.Now()
	dir, err := newServerDir("goaws")
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "goaws.yaml")
	var client *sqs.Client
	p, port, err := startWithRetry(func(port int) (*proc, error) {
		if err := os.WriteFile(conf, []byte(fmt.Sprintf(goawsConfig, port, sqsRegion, sqsAccount)), 0o644); err != nil {
			return nil, err
		}
		return startProc("goaws", filepath.Join(dir, "server.log"), nil, syscall.SIGTERM, nil, bin,
			"-config", conf, "-loglevel", "warn", "Local")
	}, func(port int) func(ctx context.Context) error {
		c := newSQSClient("http://127.0.0.1:"+strconv.Itoa(port), sqsRegion, sqsAccess, sqsSecret)
		return func(ctx context.Context) error {
			_, err := c.ListQueues(ctx, &sqs.ListQueuesInput{})
			if err == nil {
				client = c
			}
			return err
		}
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	atExit(func() {
		p.stop()
		os.RemoveAll(dir)
	})
	logStart("goaws", p, port, began)
	return &sqsServer{
		endpoint: "http://127.0.0.1:" + strconv.Itoa(port), client: client,
		what: fmt.Sprintf("goaws (pid %d)", p.pid()), tail: p.logTail,
	}, nil
}
