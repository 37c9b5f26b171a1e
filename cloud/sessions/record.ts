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
  // Set on a QoS>0 subscription that was removed or replaced while the session had read up to
  // this position: records before it still match it. The messages the session already sent (and
  // may have to send again after a reconnect) keep their QoS and packet ids; later records do not
  // match it. Dropped from the record once the cursor passes it.
  until?: number
}

// Packet identifiers of the messages a session's follower sends come from this range, in
// sequence, so a resumed session computes the same id for the same message from its record
// [MQTT-4.4.0-1]. Other QoS>0 deliveries to a persistent session (live and retained messages of
// other cloud apps) are numbered above it (persistence.ts), so the two never collide.
export const FOLLOWER_MAX_PACKET_ID = 0xBFFF
export const OTHER_MIN_PACKET_ID = 0xC000

export function nextPacketId (id: number): number {
  return id >= FOLLOWER_MAX_PACKET_ID ? 1 : id + 1
}

export interface SessionRecord {
  subs: SessionSub[]
  // Every record before this store position is done for this session (acked, or not matching).
  // Never ahead of what the client acknowledged.
  cursor: number
  // Packet id of the first QoS>0 message the session sends at or after `cursor`; the messages
  // after it get the following ids (nextPacketId), in store order.
  packetId: number
  // Records before this position were sent already: the ones sent again carry DUP=1 [MQTT-3.3.1-1].
  sentUpTo: number
  // QoS 2 messages whose PUBREC came and whose PUBCOMP did not (in PUBREC order): after a
  // reconnect their PUBREL is sent again, never the PUBLISH [MQTT-4.4.0-1] [MQTT-4.6.0-3].
  released: number[]
  // Packet ids acknowledged out of order, after the cursor's message: not sent again.
  acked: number[]
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

// JSON with short keys: the record is rewritten at every cursor flush. p/d/r/a are absent in
// records of the first version (read as: ids from 1, nothing sent past the cursor).
export function encodeSession (r: SessionRecord): Buffer {
  const subs = r.subs.map((x) => x.until === undefined ? [x.topic, x.qos, x.since] : [x.topic, x.qos, x.since, x.until])
  return Buffer.from(JSON.stringify({ v: 1, s: subs, c: r.cursor, p: r.packetId, d: r.sentUpTo, r: r.released, a: r.acked, h: r.holder, e: r.epoch, u: r.heldUntilMs, t: r.touchedMs }), 'utf8')
}

export function decodeSession (b: Uint8Array): SessionRecord {
  const v = JSON.parse(Buffer.from(b).toString('utf8')) as { s: Array<[string, QoSLevel, number, number?]>, c: number, p?: number, d?: number, r?: number[], a?: number[], h: string, e: number, u: number, t: number }
  return {
    subs: v.s.map(([topic, qos, since, until]) => until === undefined ? { topic, qos, since } : { topic, qos, since, until }),
    cursor: v.c,
    packetId: v.p ?? 1,
    sentUpTo: v.d ?? v.c,
    released: v.r ?? [],
    acked: v.a ?? [],
    holder: v.h,
    epoch: v.e,
    heldUntilMs: v.u,
    touchedMs: v.t
  }
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
