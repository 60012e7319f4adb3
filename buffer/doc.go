// Package buffer puts a disk buffer in front of a sink, so that neither an
// outage of the receiver longer than the in-memory queues nor a crash of
// the program loses data.
//
// A Disk[T] is a sink.Sink[T] that wraps another one:
//
//	lokiSink := &loki.Sink{URL: "http://loki:3100/loki/api/v1/push"}
//	pipeline.To(b, "loki", buffer.Wrap("/var/lib/agent/buffer/loki", lokiSink, buffer.Options{MaxBytes: 4 << 30}), logs)
//
// # Two hops, each at least once
//
// Upstream, Send encodes a batch, appends it to the current segment file and
// returns; the batch is acknowledged once its records are durable, after
// the fsync that follows (group commit: one fsync covers every batch written
// since the last, every SyncInterval, default 1s, or in every Send with a
// negative SyncInterval). A source then advances its position and a
// scraper goes on scraping, whatever the receiver does. The price is
// latency of acknowledgement: a source waits up to SyncInterval for it, and
// must keep reading meanwhile (Ferry's sources do, with several batches in
// flight). A shorter interval costs more fsyncs.
//
// Downstream, the buffer is a source of its own: one goroutine reads the
// records in the order they were written and sends them to the inner sink,
// at most MaxInFlight records and MaxInFlightBytes bytes at a time. The inner sink's acknowledgements
// may come back in any order; the read marker moves to the first record not
// yet acknowledged, and a segment file is deleted only when all of its
// records are. A record the inner sink fails with a retryable error (a 429,
// a 5xx, a network error it gave up on) is sent again, with exponential
// backoff, without limit and without skipping it; one it fails with
// ferry.Permanent is settled (the inner sink counts it as dropped).
//
// While the replay keeps up with the writer (within MaxInFlightBytes), it
// does not read the records back: Send hands each record over in memory as
// it writes it, for ferry.Entry and ferry.Sample with this package's codecs
// as a copy of the batch's items (which the replay sends as they are,
// without decoding), for other types as the encoded bytes. A retry reads
// the record from its segment. Only a backlog is read from the files.
//
// # What a crash can do
//
// Nothing acknowledged upstream is lost by a crash of the program
// (SIGKILL, an OOM kill, a panic): it was fsynced before its
// acknowledgement. The marker is saved (write to a temporary file, fsync,
// rename, fsync of the directory) at most once per SyncInterval, so a
// restart sends again what the inner sink acknowledged since the last
// save, plus what was in flight: duplicates, bounded by one interval of
// delivery plus the records in flight, never a gap. A batch written and not
// yet fsynced when the program dies was not acknowledged, so its source
// reads it again. Replay may send records before their fsync (once they
// reached the file); after a power loss such records may be delivered and
// then sent again by their source: again a duplicate, not a loss.
//
// # Disk layout
//
// Dir holds segment files named by a hexadecimal sequence number
// (0000000000000001.seg, ...), the read marker "ack" and a lock file. A
// segment has an 8-byte header (magic "FRYB", version) and records:
// length, CRC-32C (Castagnoli), item count and write time in a 20-byte
// header, then the codec's encoding of each item with its length. A
// segment is closed at SegmentBytes and the next one started; each run
// starts a new segment. The directory is locked (flock) against a second
// process or Disk.
//
// On Start, the last segment is read through and a torn tail (a record cut
// by a crash or a full disk) is cut off. A record whose checksum or length
// is wrong is counted in the corruption metric and logged; the rest of its
// segment is skipped, and replay goes on with the next segment: corruption
// costs at most one segment, never a panic or a stall. A damaged marker
// replays every segment.
//
// # Bounds
//
// MaxBytes bounds the segment files and is required. When it is reached,
// Send waits for the inner sink to free a segment (Block, the default,
// backpressure as without a buffer, only much later), or deletes the
// oldest segment and counts its items as dropped (DropOldest). Memory does
// not depend on the backlog: the writer holds one batch and a 256 KiB write
// buffer, replay MaxInFlightBytes of records (default 4 MiB, plus at most
// one record of at most 1 MiB) and a 256 KiB read-ahead; what is known per
// segment is a few counters. A full disk or an unwritable directory fails the batches not
// yet durable with a retryable error, cuts the segment back to its last
// durable size, and makes the buffer Failing until a write succeeds again.
//
// # One buffer per destination
//
// Each Disk has its own directory, marker and replay: a dead endpoint
// fills its own buffer and no other. Give each destination its own Disk
// (a Loki sink per endpoint, each wrapped) rather than one buffer in front
// of a sink with several endpoints, whose slowest endpoint would hold back
// the acknowledgements of all.
//
// # Lifecycle
//
// Start once, Close for good (internal/lifecycle's contract): Send before
// Start acknowledges the batch with ErrNotStarted, which wraps
// ferry.ErrNotStarted, and after Close with ErrClosed, which wraps
// ferry.ErrClosed; a second Start does nothing, a Start after Close
// fails. Close is safe without Start and twice.
//
// # Observability
//
// Stats returns a snapshot (bytes, records and items waiting, oldest
// record age, replay rate, records written, replayed and acknowledged,
// retries, drops, corruptions, write errors) at any time, during Start
// too. State returns it as attributes (pipeline.StateReporter), which the
// debug page of package debugui shows on the buffer's page and row. A
// Disk is a prometheus.Collector with the same figures as ferry_buffer_*
// metrics labelled buffer=Name; a pipeline collects it with its own
// metrics.
package buffer
