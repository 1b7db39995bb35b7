package testinfra

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// KafkaTopic is a topic of its own for one test, on a Kafka cluster shared
// by the test binary: Redpanda in a container, or locally franz-go's kfake
// in the test binary's own process, on one fixed 127.0.0.1 port that
// non-Go clients (versitygw's event sink, a CLI) can dial too. Both speak
// the Kafka protocol: produce, fetch, consumer groups and committed
// offsets, idempotent and transactional producers, read-committed. There
// is no authentication and no TLS, and topics are not created on first
// use: make more with NewTopic.
type KafkaTopic struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string
	// Topic has Partitions partitions and was created for this test.
	Topic      string
	Partitions int32

	admin *kadm.Client
}

// KafkaPartitions is the partition count of the topic Kafka creates.
const KafkaPartitions = 3

type kafkaCluster struct {
	brokers []string
	admin   *kadm.Client
}

var kafkaShared, kafkaDocker shared[*kafkaCluster]

// Kafka returns a fresh topic of KafkaPartitions partitions on this test
// binary's Kafka cluster, starting the cluster on first use. The topic is
// deleted when the test ends.
func Kafka(t testing.TB) *KafkaTopic {
	t.Helper()
	c := kafkaFor(t)
	k := &KafkaTopic{Brokers: c.brokers, Partitions: KafkaPartitions, admin: c.admin}
	k.Topic = k.NewTopic(t, KafkaPartitions)
	return k
}

func kafkaFor(t testing.TB) *kafkaCluster {
	t.Helper()
	if c, ok := fromDocker(t, &kafkaDocker, "Redpanda", startRedpandaContainer); ok {
		return c
	}
	c, err := kafkaShared.get(startKfake)
	if err != nil {
		t.Fatalf("testinfra: start Kafka: %v", err)
	}
	return c
}

// NewTopic creates another topic for this test on the same cluster, with
// a name derived from the test's name, and deletes it when the test ends.
func (k *KafkaTopic) NewTopic(t testing.TB, partitions int32) string {
	t.Helper()
	// Topic names: letters, digits, '.', '_' and '-', at most 249.
	name := uniqueName(t, '-', 200)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := k.admin.CreateTopic(ctx, partitions, 1, nil, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("testinfra: Kafka at %s: create topic %s: %v", strings.Join(k.Brokers, ","), name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resps, err := k.admin.DeleteTopics(ctx, name)
		if err == nil {
			err = resps.Error()
		}
		if err != nil {
			t.Logf("testinfra: delete topic %s: %v", name, err)
		}
	})
	return name
}

// Client is a franz-go client for the cluster, seeded with Brokers, with
// opts added; it is closed when the test ends.
func (k *KafkaTopic) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(k.Brokers...)}, opts...)...)
	if err != nil {
		t.Fatalf("testinfra: Kafka client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// startKfake starts an in-process cluster of one broker on a fixed free
// port. kfake does not auto-create topics: a topic must be created first
// (NewTopic), as with a broker configured that way.
func startKfake() (*kafkaCluster, error) {
	began := time.Now()
	var (
		c   *kfake.Cluster
		err error
	)
	for attempt := 0; attempt < 3; attempt++ {
		var port int
		if port, err = freePort(); err != nil {
			return nil, err
		}
		// A port taken between freePort and the listen fails NewCluster:
		// try another.
		if c, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.ClusterID("sluice-testinfra")); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("kfake: %w", err)
	}
	brokers := c.ListenAddrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		c.Close()
		return nil, err
	}
	atExit(func() {
		cl.Close()
		c.Close()
	})
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "testinfra: Kafka (kfake, in process) on %s, started in %v\n", strings.Join(brokers, ","), time.Since(began).Round(time.Millisecond))
	}
	return &kafkaCluster{brokers: brokers, admin: kadm.NewClient(cl)}, nil
}
