// Package s3events will hold the S3 object-event source: notifications from
// SQS or a Kafka topic (AWS, EventBridge and MinIO shapes) name objects
// whose bodies (JSON lines, CSV or Parquet, optionally gzip or zstd) become
// records. Duplicate notifications are expected and absorbed; the set of
// objects done is part of the checkpoint position, and messages are
// deleted (acked) only after the checkpoint that covers them committed.
//
// Nothing is implemented here yet; see pipeline/doc.go for the Source
// contract it will follow.
package s3events
