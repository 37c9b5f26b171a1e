// One persistent session of a cloud subscriber, as kept in the cluster (or the node's LevelDB with
// the embedded store): its subscriptions, a cursor into the cloud store, and who holds it.
// One value per client id, always written with compare-and-set on its revision, so the lease and
// the cursor move together and a node that lost the session cannot write it any more.
// No message is ever copied here: what a session is owed is (store records from `cursor` on)
// that match `subs`.
import type { QoSLevel } from '../../src/protocol/bridge-frames.js'

export interface SessionSub {
  topic: string // MQTT topic filter (cloud topics, e.g. up/+/devices/#)
  qos: QoSLevel // granted QoS
  // Store position at SUBSCRIBE: records before it do not match this filter (the session did not
  // ask for them then) [MQTT-3.8.4-3]: a replaced QoS>0 subscription keeps its start.
  since: number
}

export interface SessionRecord {
  subs: SessionSub[]
  // Every record before this store position is done for this session (acked, or not matching).
  // Never ahead of what the client acknowledged.
  cursor: number
  // Node process holding the session ('' = none: the client is offline).
  holder: string
  // Fencing token: +1 at every CONNECT that takes the session (on any node).
  epoch: number
  // Held while connected; renewed at a third of the lease TTL. Informational for operators and
  // the expiry sweep: a takeover never waits for it (MQTT: the newest connection wins).
  heldUntilMs: number
  // Last write; a session offline (holder '' or lease run out) longer than the session expiry
  // after this is removed.
  touchedMs: number
}

export interface VersionedSession {
  record: SessionRecord
  revision: number
}

export function encodeSession (r: SessionRecord): Buffer {
  return Buffer.from(JSON.stringify({ v: 1, s: r.subs.map((x) => [x.topic, x.qos, x.since]), c: r.cursor, h: r.holder, e: r.epoch, u: r.heldUntilMs, t: r.touchedMs }), 'utf8')
}

export function decodeSession (b: Uint8Array): SessionRecord {
  const v = JSON.parse(Buffer.from(b).toString('utf8')) as { s: Array<[string, QoSLevel, number]>, c: number, h: string, e: number, u: number, t: number }
  return { subs: v.s.map(([topic, qos, since]) => ({ topic, qos, since })), cursor: v.c, holder: v.h, epoch: v.e, heldUntilMs: v.u, touchedMs: v.t }
}

// Client id -> key token. base64url of the UTF-8 bytes: bijective, and its alphabet is valid in a
// NATS KV key and a LevelDB key alike (MQTT client ids may hold any UTF-8 character).
export function clientToken (clientId: string): string {
  return Buffer.from(clientId, 'utf8').toString('base64url') || '='
}

export function tokenClient (token: string): string {
  return token === '=' ? '' : Buffer.from(token, 'base64url').toString('utf8')
}

// Whether the session counts as offline at `nowMs` and has been for longer than `expiryMs`.
export function isExpired (r: SessionRecord, nowMs: number, expiryMs: number): boolean {
  const offlineSince = r.holder === '' ? r.touchedMs : r.heldUntilMs
  return offlineSince <= nowMs - expiryMs
}
