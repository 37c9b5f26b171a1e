import { LOG_LEVELS } from '../log/index.js'
import type { ConfigOf, Schema } from './schema.js'

// Every `tributary sim` setting, declared once (`tributary sim --help` prints them). A scenario
// file (--scenario) describes device groups; these flags describe one homogeneous group and the
// run around it (broker, checker, faults, reporting, load mode).
export const simSchema = {
  broker: { kind: 'string', default: 'mqtt://127.0.0.1:1883', flag: 'broker', doc: 'Broker URL the devices connect to (mqtt://host:port or ws://host:port/path)', nonEmpty: true },
  scenario: { kind: 'optionalString', default: undefined, flag: 'scenario', doc: 'Scenario YAML file (device groups, faults); flags below set defaults for it' },
  durationMs: { kind: 'duration', min: 0, max: 7 * 86_400_000, default: 10_000, flag: 'duration', doc: 'How long devices publish (0 = until SIGINT)' },
  logLevel: { kind: 'enum', values: LOG_LEVELS, default: 'warn', flag: 'log-level', doc: 'Log level (logs go to stderr)' },
  report: { kind: 'enum', values: ['text', 'json'] as const, default: 'text', flag: 'report', doc: 'Final report: human summary or one JSON object on stdout' },
  expectNoLoss: { kind: 'bool', default: false, flag: 'expect-no-loss', doc: 'Exit non-zero when any message was lost' },
  statusIntervalMs: { kind: 'duration', min: 100, max: 3_600_000, default: 1000, flag: 'status-interval', doc: 'Progress line period (a single line on a TTY, plain lines otherwise)' },
  seed: { kind: 'int', min: 0, max: 2 ** 31 - 1, default: 0, flag: 'seed', doc: 'Random seed for sensor values and jitter (0 = random)' },
  devices: {
    count: { kind: 'int', min: 0, max: 100_000, default: 10, flag: 'devices', doc: 'Number of simulated devices' },
    ratePerSec: { kind: 'number', min: 0, max: 100_000, default: 1, flag: 'rate', doc: 'Messages per second per device' },
    messages: { kind: 'int', min: 0, max: 2 ** 31, default: 0, flag: 'messages', doc: 'Messages per device, then it stops (0 = until the duration ends)' },
    qos: { kind: 'int', min: 0, max: 1, default: 1, flag: 'qos', doc: 'QoS of telemetry (0 or 1)' },
    topic: { kind: 'string', default: 'devices/{id}/telemetry', flag: 'topic', doc: 'Telemetry topic template ({id} = device id)', nonEmpty: true },
    idPrefix: { kind: 'string', default: 'sim', flag: 'id-prefix', doc: 'Device ids are <prefix>-<n>; also the MQTT client id', nonEmpty: true },
    payload: { kind: 'enum', values: ['json', 'binary'] as const, default: 'json', flag: 'payload', doc: 'Payload profile: JSON sensor readings or binary' },
    payloadBytes: { kind: 'bytes', min: 24, max: 256 * 1024, default: 64, flag: 'payload-bytes', doc: 'Size of binary payloads (>= 24: the accounting header)' },
    session: { kind: 'enum', values: ['clean', 'persistent'] as const, default: 'clean', flag: 'session', doc: 'MQTT clean session or persistent session (clean=false)' },
    keepaliveMs: { kind: 'duration', min: 0, max: 65_535_000, default: 30_000, flag: 'keepalive', doc: 'MQTT keepalive; a link silent for 1.5x this is declared dead' },
    // 16 unacked QoS 1 messages per device: firmware has little RAM; enough to fill a slow link.
    inflight: { kind: 'int', min: 1, max: 32_000, default: 16, flag: 'inflight', doc: 'Unacknowledged QoS 1 messages per device' },
    // Bounded device-side buffer while offline, like firmware's flash/RAM queue; beyond it
    // readings are skipped (counted), never silently dropped after a sequence number was given.
    queueLimit: { kind: 'int', min: 0, max: 1_000_000, default: 1000, flag: 'queue-limit', doc: 'Readings a device buffers while offline (QoS 1)' },
    rampPerSec: { kind: 'int', min: 1, max: 1_000_000, default: 2000, flag: 'ramp', doc: 'New device connections per second' },
    backoffMinMs: { kind: 'duration', min: 1, max: 3_600_000, default: 100, flag: 'backoff-min', doc: 'First reconnect delay (doubles per failure, with jitter)' },
    backoffMaxMs: { kind: 'duration', min: 1, max: 3_600_000, default: 10_000, flag: 'backoff-max', doc: 'Longest reconnect delay' },
    commandRatePerSec: { kind: 'number', min: 0, max: 100_000, default: 0, flag: 'command-rate', doc: 'Commands per second sent to random devices (round trip measured)' }
  },
  check: {
    url: { kind: 'optionalString', default: undefined, flag: 'check-url', doc: 'Where the checker subscribes (default: the broker, not through the fault proxy)' },
    filter: { kind: 'optionalString', default: undefined, flag: 'check-filter', doc: 'Checker subscription (default: the topic template with {id} -> +)' },
    prefix: { kind: 'string', default: '', flag: 'check-prefix', doc: 'Prefix of topics at the checker, e.g. up/edge-1/ at the cloud end of a bridge' },
    drainTimeoutMs: { kind: 'duration', min: 0, max: 3_600_000, default: 10_000, flag: 'drain-timeout', doc: 'After the run, longest wait for acks and deliveries before counting loss' }
  },
  faults: { kind: 'list', default: [], flag: 'fault', doc: "Fault schedule through a TCP proxy, repeatable: 'at=10s cut=5s', 'at=20s blackhole=30s', 'at=0s latency=50ms for=10s', 'at=5s throttle=10KiB for=5s'" },
  load: {
    maxRate: { kind: 'bool', default: false, flag: 'max-rate', doc: 'Load mode: publish as fast as flow control allows' },
    ratePerSec: { kind: 'int', min: 0, max: 100_000_000, default: 0, flag: 'load-rate', doc: 'Load mode at a fixed total rate (messages/s, allocation-free pacing)' },
    connections: { kind: 'int', min: 1, max: 10_000, default: 4, flag: 'connections', doc: 'Load mode: publishing connections' },
    subscribers: { kind: 'int', min: 0, max: 10_000, default: 1, flag: 'subscribers', doc: 'Load mode: subscribing connections, each receives everything' },
    // 64 unacked QoS 1 messages per connection keeps a loopback broker busy without
    // measuring only queueing.
    window: { kind: 'int', min: 1, max: 65_535, default: 64, flag: 'window', doc: 'Load mode, QoS 1: in-flight window per connection' },
    // Excluded from every rate and latency figure: JIT compilation, first allocations and the
    // connections' first round trips (in the broker and in this generator) otherwise land in p99.
    warmupMs: { kind: 'duration', min: 0, max: 600_000, default: 0, flag: 'warmup', doc: 'Load mode: run this long at the asked rate before measuring (not counted in rates or latency)' },
    idleConnections: { kind: 'int', min: 0, max: 1_000_000, default: 0, flag: 'idle-connections', doc: 'Idle mode: open this many connections and hold them for --duration' }
  }
} as const satisfies Schema

export type SimConfig = ConfigOf<typeof simSchema>
