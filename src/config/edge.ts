import { LOG_LEVELS } from '../log/index.js'
import type { ConfigOf, Schema } from './schema.js'

// Every edge setting, declared once. README's configuration reference is generated from this
// (`tributary edge --help` prints the flags).
export const edgeSchema = {
  dataDir: { kind: 'string', default: './data', flag: 'data-dir', doc: 'Directory for the commitlog and metadata', nonEmpty: true },
  logLevel: { kind: 'enum', values: LOG_LEVELS, default: 'info', flag: 'log-level', doc: 'Log level' },
  mqtt: {
    host: { kind: 'string', default: '0.0.0.0', flag: 'mqtt-host', doc: 'Address the MQTT listeners bind to' },
    port: { kind: 'int', min: 0, max: 65535, default: 1883, flag: 'mqtt-port', doc: 'MQTT over TCP port (0 = any free port)' },
    wsPort: { kind: 'int', min: -1, max: 65535, default: 8080, flag: 'ws-port', doc: 'MQTT over WebSocket port (-1 = off)' },
    tlsPort: { kind: 'int', min: -1, max: 65535, default: -1, flag: 'tls-port', doc: 'MQTT over TLS port (-1 = off; needs tls-cert and tls-key)' },
    tlsCertFile: { kind: 'optionalString', default: undefined, flag: 'tls-cert', doc: 'PEM certificate for the TLS listener' },
    tlsKeyFile: { kind: 'optionalString', default: undefined, flag: 'tls-key', doc: 'PEM private key for the TLS listener' }
  },
  limits: {
    // 256 KiB: telemetry is small; a bigger packet is a misbehaving device and costs RAM on a Pi.
    maxPacketBytes: { kind: 'bytes', min: 64, max: 256 * 1024 * 1024, default: 256 * 1024, flag: 'max-packet-bytes', doc: 'Largest MQTT packet accepted; larger closes the connection' },
    // A Pi holds ~10k idle connections in a few hundred MB; more should be refused than swap.
    maxConnections: { kind: 'int', min: 1, max: 1_000_000, default: 10_000, flag: 'max-connections', doc: 'Concurrent client connections' },
    // Unacked QoS 1/2 messages towards one client; bounds memory per slow subscriber.
    inflightWindow: { kind: 'int', min: 1, max: 65535, default: 100, flag: 'inflight-window', doc: 'Unacknowledged QoS>0 messages in flight per client' },
    maxTopicLength: { kind: 'int', min: 1, max: 65535, default: 1024, flag: 'max-topic-length', doc: 'Longest topic name in bytes' },
    maxTopicLevels: { kind: 'int', min: 1, max: 128, default: 16, flag: 'max-topic-levels', doc: 'Most levels (slash-separated parts) in a topic' },
    connectTimeoutMs: { kind: 'duration', min: 100, max: 600_000, default: 10_000, flag: 'connect-timeout', doc: 'Time a new connection has to send CONNECT' }
  },
  commitlog: {
    segmentBytes: { kind: 'bytes', min: 64 * 1024, max: 1024 ** 3, default: 64 * 1024 * 1024, flag: 'segment-bytes', doc: 'Size of one commitlog segment file' },
    flushPolicy: { kind: 'enum', values: ['always', 'interval', 'none'] as const, default: 'interval', flag: 'flush-policy', doc: 'When appends are fsynced before acks (see src/commitlog/README.md)' },
    flushIntervalMs: { kind: 'duration', min: 1, max: 10_000, default: 5, flag: 'flush-interval', doc: 'With flush-policy interval: longest wait before an fsync' },
    // 0: group commit back to back (~870 fsyncs/s at 5,000 msgs/s on the bench machine's SSD).
    // SD cards wear with every flush: a gap caps the rate at the cost of ack latency (types.ts).
    minFsyncGapMs: { kind: 'duration', min: 0, max: 10_000, default: 0, flag: 'min-fsync-gap', doc: 'Least time between two fsyncs of the log (0 = back to back); for SD cards, e.g. 5 = at most 200/s. Acks may wait this much longer. With flush-policy interval at most flush-interval' },
    maxRecordBytes: { kind: 'bytes', min: 1024, max: 256 * 1024 * 1024, default: 1024 * 1024 + 65536, flag: 'max-record-bytes', doc: 'Largest record the log accepts' },
    retentionBytes: { kind: 'bytes', min: 0, default: 8 * 1024 ** 3, flag: 'retention-bytes', doc: 'Disk cap of the commitlog (0 = no cap); oldest segments are deleted past it' },
    retentionMs: { kind: 'duration', min: 0, default: 7 * 86_400_000, flag: 'retention', doc: 'Delete segments older than this (0 = keep forever) unless still needed' },
    // 8 MiB: more than an fsync stall of 200 ms holds back even at 20k msgs/s of 1 KiB (~4 MiB),
    // so stalls stay off the device-to-cloud path; each dirty restart skips this many offsets.
    replicateAheadBytes: { kind: 'bytes', min: 0, max: 1024 ** 3, default: 8 * 1024 * 1024, flag: 'replicate-ahead-bytes', doc: 'The bridge may send records written but not yet fsynced, this far past the durable offset (0 = durable records only; see src/commitlog/README.md)' }
  },
  runtime: {
    // Off: a connection storm's short-lived garbage is otherwise pretenured into the old
    // generation (src/mqtt/young-generation.ts): ~9 instead of 10-14 KiB per idle connection.
    gcPretenuring: { kind: 'bool', default: false, flag: 'gc-pretenuring', doc: 'Let V8 pretenure allocation sites (off = less memory per connection after connection storms)' },
    // 0 = V8's own sizing (16 MiB on 64-bit): a cap of 8 saves ~2 KiB more per idle connection at
    // 10,000 but costs scavenges (src/mqtt/young-generation.ts), so it is opt-in for small devices.
    gcSemiSpaceMib: { kind: 'int', min: 0, max: 8, default: 0, flag: 'gc-semi-space-mib', doc: 'Cap on one V8 young-generation semi-space, MiB (0 = V8 default sizing; 4 at most on 32-bit); lower = less memory, more GC' }
  },
  http: {
    port: { kind: 'int', min: -1, max: 65535, default: 9101, flag: 'http-port', doc: 'HTTP port for /healthz and /metrics (-1 = off)' }
  },
  bridge: {
    cloudUrls: { kind: 'list', default: [], flag: 'cloud-url', doc: 'Cloud bridge URL(s), ws:// or wss://, repeatable for fail-over (none = no bridge)' },
    edgeId: { kind: 'string', default: 'edge-1', flag: 'edge-id', doc: 'This edge\'s id at the cloud' },
    cloudToken: { kind: 'optionalString', default: undefined, flag: 'cloud-token', doc: 'Token this edge authenticates with' },
    caFile: { kind: 'optionalString', default: undefined, flag: 'cloud-ca', doc: 'PEM file of CA certificate(s) trusted for wss:// cloud URLs, besides the system CAs (e.g. a fleet\'s private CA)' },
    forward: { kind: 'list', default: ['#'], flag: 'forward', doc: 'Local topic filters replicated to the cloud, repeatable' },
    // 1 MiB: big enough to amortise a round trip over ~8k small messages, small enough that a
    // batch is cheap to resend after a reconnect and fits the cloud's frame limit (16 MiB).
    batchMaxBytes: { kind: 'bytes', min: 1024, max: 15 * 1024 * 1024, default: 1024 * 1024, flag: 'bridge-batch-bytes', doc: 'Largest batch of records sent in one frame' },
    // Bounds the records array per frame (the cloud refuses more than 65536).
    batchMaxRecords: { kind: 'int', min: 1, max: 65_536, default: 16_384, flag: 'bridge-batch-records', doc: 'Most records in one batch' },
    // Unacked batches in flight: window x batch bytes is what a reconnect may resend.
    windowBatches: { kind: 'int', min: 1, max: 256, default: 32, flag: 'bridge-window', doc: 'Unacknowledged window: this many full-size batches (bridge-batch-bytes) worth of bytes, and at most 32 times this many batches' },
    rateMsgsPerSec: { kind: 'int', min: 0, default: 0, flag: 'bridge-rate-msgs', doc: 'Cap on replicated messages per second (0 = none)' },
    rateBytesPerSec: { kind: 'bytes', min: 0, default: 0, flag: 'bridge-rate-bytes', doc: 'Cap on replicated payload bytes per second (0 = none)' },
    heartbeatMs: { kind: 'duration', min: 100, max: 600_000, default: 5_000, flag: 'bridge-heartbeat', doc: 'Interval of bridge PINGs' },
    heartbeatTimeoutMs: { kind: 'duration', min: 200, max: 3_600_000, default: 15_000, flag: 'bridge-heartbeat-timeout', doc: 'Silence after which the link is declared dead and reconnected' },
    backoffMinMs: { kind: 'duration', min: 10, max: 600_000, default: 250, flag: 'bridge-backoff-min', doc: 'First reconnect delay (doubles per failure, with jitter)' },
    backoffMaxMs: { kind: 'duration', min: 10, max: 3_600_000, default: 30_000, flag: 'bridge-backoff-max', doc: 'Longest reconnect delay' },
    connectTimeoutMs: { kind: 'duration', min: 100, max: 600_000, default: 10_000, flag: 'bridge-connect-timeout', doc: 'Time to open the link and be welcomed' },
    checkpointIntervalMs: { kind: 'duration', min: 10, max: 600_000, default: 1_000, flag: 'bridge-checkpoint-interval', doc: 'How often the acked offset is saved (a lag only means an idempotent resend)' }
  }
} as const satisfies Schema

export type EdgeConfig = ConfigOf<typeof edgeSchema>
