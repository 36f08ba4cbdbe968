// sarama-offsets: what Debian's sarama (1.22.1) does against a broker, with
// its DEFAULT config (Version V0_8_2_0: Metadata v0, ListOffsets v0,
// FindCoordinator v0, OffsetFetch v1, OffsetCommit v1, Produce v0, Fetch v0),
// and a consumer group (which sarama refuses below V0_10_2_0; V0_11_0_0 here,
// the first with record batches; its commits are OffsetCommit v1 too).
//
// Usage: sarama-offsets default BROKER TOPIC GROUP OFFSET
//          prints "newest N", "initial N", commits OFFSET with the default
//          offset manager, prints "committed N" as a new manager reads it
//          back, and "produce-v0 ERR" for what a default-config producer gets.
//        sarama-offsets group BROKER TOPIC GROUP COUNT
//          produces COUNT messages, consumes them with a consumer group that
//          marks each one, and prints "consumed N" and "committed N".
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

func fail(what string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", what, err)
	os.Exit(1)
}

func committed(broker, topic, group string, config *sarama.Config) int64 {
	client, err := sarama.NewClient([]string{broker}, config)
	if err != nil {
		fail("client", err)
	}
	defer client.Close()
	om, err := sarama.NewOffsetManagerFromClient(group, client)
	if err != nil {
		fail("offset manager", err)
	}
	defer om.Close()
	pom, err := om.ManagePartition(topic, 0)
	if err != nil {
		fail("manage partition", err)
	}
	defer pom.Close()
	next, _ := pom.NextOffset()
	return next
}

func defaultConfig(broker, topic, group string, offset int64) {
	config := sarama.NewConfig() // the default: Version V0_8_2_0
	fmt.Printf("version %s\n", config.Version)
	client, err := sarama.NewClient([]string{broker}, config)
	if err != nil {
		fail("client", err)
	}
	newest, err := client.GetOffset(topic, 0, sarama.OffsetNewest)
	if err != nil {
		fail("get offset", err)
	}
	fmt.Printf("newest %d\n", newest)
	om, err := sarama.NewOffsetManagerFromClient(group, client)
	if err != nil {
		fail("offset manager", err)
	}
	pom, err := om.ManagePartition(topic, 0)
	if err != nil {
		fail("manage partition", err)
	}
	initial, _ := pom.NextOffset()
	fmt.Printf("initial %d\n", initial)
	pom.MarkOffset(offset, "sarama-default")
	// Close flushes the commit (OffsetCommit v1).
	pom.Close()
	om.Close()
	client.Close()
	fmt.Printf("committed %d\n", committed(broker, topic, group, sarama.NewConfig()))

	pc := sarama.NewConfig()
	pc.Producer.Return.Successes = true // required by the sync producer
	producer, err := sarama.NewSyncProducer([]string{broker}, pc)
	if err != nil {
		fail("producer", err)
	}
	_, _, err = producer.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder("v0")})
	fmt.Printf("produce-v0 %v\n", err)
	producer.Close()
}

type handler struct {
	want     int
	mu       sync.Mutex
	consumed int
	done     chan struct{}
	once     sync.Once
}

func (h *handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *handler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		s.MarkMessage(m, "")
		h.mu.Lock()
		h.consumed++
		n := h.consumed
		h.mu.Unlock()
		if n >= h.want {
			h.once.Do(func() { close(h.done) })
		}
	}
	return nil
}

func group(broker, topic, groupID string, count int) {
	config := sarama.NewConfig()
	config.Version = sarama.V0_11_0_0
	config.Producer.Return.Successes = true
	config.Consumer.Offsets.Initial = sarama.OffsetOldest
	config.Consumer.Offsets.CommitInterval = 100 * time.Millisecond
	producer, err := sarama.NewSyncProducer([]string{broker}, config)
	if err != nil {
		fail("producer", err)
	}
	for i := 0; i < count; i++ {
		msg := &sarama.ProducerMessage{Topic: topic, Partition: 0, Value: sarama.StringEncoder(strconv.Itoa(i))}
		if _, _, err := producer.SendMessage(msg); err != nil {
			fail("produce", err)
		}
	}
	producer.Close()

	cg, err := sarama.NewConsumerGroup([]string{broker}, groupID, config)
	if err != nil {
		fail("consumer group", err)
	}
	go func() {
		for err := range cg.Errors() {
			fmt.Fprintf(os.Stderr, "group error: %v\n", err)
		}
	}()
	h := &handler{want: count, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, h); err != nil {
				fmt.Fprintf(os.Stderr, "consume: %v\n", err)
				time.Sleep(200 * time.Millisecond)
			}
		}
	}()
	select {
	case <-h.done:
	case <-time.After(60 * time.Second):
		fail("consume", fmt.Errorf("timed out after %d messages", h.consumed))
	}
	time.Sleep(500 * time.Millisecond) // two commit intervals
	cancel()
	cg.Close() // commits what is marked (OffsetCommit v1)
	fmt.Printf("consumed %d\n", h.consumed)
	fmt.Printf("committed %d\n", committed(broker, topic, groupID, sarama.NewConfig()))
}

func main() {
	if len(os.Args) != 6 {
		fail("usage", fmt.Errorf("sarama-offsets default|group BROKER TOPIC GROUP N"))
	}
	n, err := strconv.Atoi(os.Args[5])
	if err != nil {
		fail("N", err)
	}
	sarama.Logger = log{}
	switch os.Args[1] {
	case "default":
		defaultConfig(os.Args[2], os.Args[3], os.Args[4], int64(n))
	case "group":
		group(os.Args[2], os.Args[3], os.Args[4], n)
	default:
		fail("mode", fmt.Errorf("%s", os.Args[1]))
	}
}

type log struct{}

func (log) Print(v ...interface{})                 { fmt.Fprint(os.Stderr, v...) }
func (log) Printf(format string, v ...interface{}) { fmt.Fprintf(os.Stderr, format, v...) }
func (log) Println(v ...interface{})               { fmt.Fprintln(os.Stderr, v...) }
