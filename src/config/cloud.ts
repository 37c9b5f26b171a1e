import { LOG_LEVELS } from '../log/index.js'
import type { ConfigOf, Schema } from './schema.js'

// Every cloud node setting, declared once (`tributary cloud --help` prints the flags).
export const cloudSchema = {
  dataDir: { kind: 'string', default: './cloud-data', flag: 'data-dir', doc: 'Directory of the embedded store (commitlog + metadata)', nonEmpty: true },
  logLevel: { kind: 'enum', values: LOG_LEVELS, default: 'info', flag: 'log-level', doc: 'Log level' },
  nodeId: { kind: 'optionalString', default: undefined, flag: 'node-id', doc: 'This node\'s name in leases (default: host-pid)' },
  store: { kind: 'string', default: 'embedded', flag: 'store', doc: 'Store: "embedded" (this node\'s data dir) or a NATS JetStream cluster "nats://host:port,nats://host:port,..." (stateless node)' },
  // 0 = automatic: 3 when the store lists 3+ NATS servers, else 1. Applies when the streams are
  // created (the first node to start); existing streams keep theirs.
  storeReplicas: { kind: 'int', min: 0, max: 5, default: 0, flag: 'store-replicas', doc: 'With a NATS store: replicas of streams and buckets (0 = 3 with 3+ servers, else 1)' },
  // Lets several deployments (or tests) share one NATS account without clashing.
  storePrefix: { kind: 'string', default: 'TRIB', flag: 'store-prefix', doc: 'With a NATS store: prefix of stream and bucket names', nonEmpty: true },
  edgeTokens: { kind: 'list', default: [], flag: 'edge-token', doc: 'EDGE=TOKEN accepted on the bridge, repeatable' },
  mqtt: {
    host: { kind: 'string', default: '0.0.0.0', flag: 'mqtt-host', doc: 'Address the MQTT listener for cloud apps binds to' },
    port: { kind: 'int', min: 0, max: 65535, default: 1884, flag: 'mqtt-port', doc: 'MQTT port for cloud applications (0 = any free port)' },
    upTemplate: { kind: 'string', default: 'up/{edge}/{topic}', flag: 'up-template', doc: 'Cloud topic of a message from an edge ({edge}, {topic})', nonEmpty: true },
    downPrefix: { kind: 'string', default: 'down/', flag: 'down-prefix', doc: 'Cloud apps publish PREFIX{edge}/{topic} to send to an edge', nonEmpty: true }
  },
  limits: {
    maxPacketBytes: { kind: 'bytes', min: 64, max: 256 * 1024 * 1024, default: 1024 * 1024 + 65536, flag: 'max-packet-bytes', doc: 'Largest MQTT packet from a cloud app' },
    maxConnections: { kind: 'int', min: 1, max: 1_000_000, default: 10_000, flag: 'max-connections', doc: 'Concurrent MQTT connections of cloud apps' },
    inflightWindow: { kind: 'int', min: 1, max: 65535, default: 1000, flag: 'inflight-window', doc: 'QoS>0 messages in flight per client (persistent sessions: counted from the oldest unacknowledged one)' },
    maxTopicLength: { kind: 'int', min: 1, max: 65535, default: 2048, flag: 'max-topic-length', doc: 'Longest topic name in bytes (edge topic + prefix)' },
    maxTopicLevels: { kind: 'int', min: 1, max: 128, default: 32, flag: 'max-topic-levels', doc: 'Most levels in a topic' },
    connectTimeoutMs: { kind: 'duration', min: 100, max: 600_000, default: 10_000, flag: 'connect-timeout', doc: 'Time a new MQTT connection has to send CONNECT' }
  },
  bridge: {
    host: { kind: 'string', default: '0.0.0.0', flag: 'bridge-host', doc: 'Address the bridge listener binds to' },
    port: { kind: 'int', min: 0, max: 65535, default: 9000, flag: 'bridge-port', doc: 'WebSocket port edges connect to at /bridge' },
    tlsCertFile: { kind: 'optionalString', default: undefined, flag: 'bridge-tls-cert', doc: 'PEM certificate: serve wss:// instead of ws://' },
    tlsKeyFile: { kind: 'optionalString', default: undefined, flag: 'bridge-tls-key', doc: 'PEM private key for the bridge certificate' },
    // 16 MiB: one edge batch (1 MiB by default) with room; bounds the RAM one frame costs.
    maxFrameBytes: { kind: 'bytes', min: 4096, max: 256 * 1024 * 1024, default: 16 * 1024 * 1024, flag: 'bridge-max-frame-bytes', doc: 'Largest bridge frame accepted (ws maxPayload)' },
    heartbeatMs: { kind: 'duration', min: 100, max: 600_000, default: 5_000, flag: 'bridge-heartbeat', doc: 'Heartbeat interval told to edges' },
    idleTimeoutMs: { kind: 'duration', min: 200, max: 3_600_000, default: 30_000, flag: 'bridge-idle-timeout', doc: 'An edge silent this long is disconnected' },
    helloTimeoutMs: { kind: 'duration', min: 100, max: 600_000, default: 10_000, flag: 'bridge-hello-timeout', doc: 'Time a new bridge connection has to authenticate' },
    leaseTtlMs: { kind: 'duration', min: 1000, max: 3_600_000, default: 30_000, flag: 'bridge-lease-ttl', doc: 'Lease on an edge held by this node (renewed at a third of it)' }
  },
  downlink: {
    ttlMs: { kind: 'duration', min: 0, default: 3_600_000, flag: 'downlink-ttl', doc: 'A downlink not delivered within this is dropped (0 = never)' },
    // Bounds a slow edge's backlog of commands in flight on one connection.
    windowMessages: { kind: 'int', min: 1, max: 10_000, default: 100, flag: 'downlink-window', doc: 'Downlinks sent and not yet acknowledged per edge' }
  },
  commitlog: {
    segmentBytes: { kind: 'bytes', min: 64 * 1024, max: 1024 ** 3, default: 64 * 1024 * 1024, flag: 'segment-bytes', doc: 'Size of one store segment file' },
    flushPolicy: { kind: 'enum', values: ['always', 'interval', 'none'] as const, default: 'interval', flag: 'flush-policy', doc: 'When the store fsyncs before acking edges' },
    flushIntervalMs: { kind: 'duration', min: 1, max: 10_000, default: 5, flag: 'flush-interval', doc: 'With flush-policy interval: longest wait before an fsync' },
    maxRecordBytes: { kind: 'bytes', min: 1024, max: 256 * 1024 * 1024, default: 1024 * 1024 + 65536, flag: 'max-record-bytes', doc: 'Largest record the store accepts' },
    retentionBytes: { kind: 'bytes', min: 0, default: 0, flag: 'retention-bytes', doc: 'Disk cap of the store (0 = no cap)' },
    retentionMs: { kind: 'duration', min: 0, default: 0, flag: 'retention', doc: 'Delete store segments older than this (0 = keep forever)' }
  },
  // Persistent MQTT sessions of cloud subscribers (cloud/README.md "Sessions").
  sessions: {
    // Bounds what abandoned sessions cost (one small record each, no messages): a client that
    // never returns is forgotten after this. At least a minute: well above the lease renewals.
    expiryMs: { kind: 'duration', min: 60_000, max: 366 * 24 * 3_600_000, default: 7 * 24 * 3_600_000, flag: 'session-expiry', doc: 'A persistent session (clean=false) whose client stays away this long is removed' },
    // Each renewal is one KV write per connected persistent session; takeovers do not wait for it
    // (the holder is asked to hand over), so it can be long.
    leaseTtlMs: { kind: 'duration', min: 1000, max: 3_600_000, default: 60_000, flag: 'session-lease-ttl', doc: 'Lease a node holds on a connected persistent session (renewed at a third of it; at most half the session expiry)' }
  },
  http: {
    host: { kind: 'string', default: '0.0.0.0', flag: 'http-host', doc: 'Address the HTTP server binds to' },
    port: { kind: 'int', min: -1, max: 65535, default: 9100, flag: 'http-port', doc: 'HTTP port for health, metrics and replay (-1 = off)' }
  }
} as const satisfies Schema

export type CloudConfig = ConfigOf<typeof cloudSchema>
