// Downlink queues: one replicated stream, one subject per edge. The per-edge sequence comes from a
// KV counter (compare-and-set increment). What was acked or dropped as expired is recorded in a
// per-edge KV state (compare-and-set), NOT by deleting stream messages: nats-server 2.9.10 loses
// its per-subject index after a message delete (last_by_subj / next_by_subj then miss messages
// that are still there; reproduced in JETSTREAM.md). The stream's max_age bounds its size.
//
// Message body (big-endian): seq u53 | expiresAtMs u53 | qos u8 | flags u8 (bit0 retain)
//                            | topicLength u16 | topic UTF-8 | payload (the rest)
// (The topic goes in the body, not a header: an MQTT topic may hold characters a header cannot.)
import type { JetStreamClient, JetStreamManager, StoredMsg } from '@nats-io/jetstream'
import type { KV } from '@nats-io/kv'
import type { Downlink, DownlinkInput, PendingDownlinks } from '../types.js'
import type { QoSLevel } from '../../../src/protocol/bridge-frames.js'
import { tributaryError } from '../../../src/errors/index.js'
import { casWrite, getEntry, liveValue, MAX_CAS_ATTEMPTS } from './kv-util.js'
import { downlinkSubject, edgeFromSubject, encodeToken, kvKey, type StoreNames } from './subjects.js'

const TWO_32 = 0x1_0000_0000
const FIXED_BYTES = 8 + 8 + 1 + 1 + 2
// Messages examined per call: a queue of commands for one edge is short; this bounds the work a
// pathological backlog can cost one reconnect (the rest is seen on the next call).
const MAX_SCAN = 10_000
// Expired downlinks above the acked seq remembered per edge (so each is counted once). Beyond
// this the oldest are forgotten: they could be counted twice, never delivered.
const MAX_REMOVED = 10_000

// Per-edge queue state in KV. `scanFrom`: stream seq below which nothing of this edge is pending.
interface QueueState { acked: number, removed: number[], scanFrom: number }

function decodeState (raw: Uint8Array | undefined): QueueState {
  if (raw === undefined) return { acked: 0, removed: [], scanFrom: 1 }
  try {
    const v = JSON.parse(Buffer.from(raw).toString('utf8')) as QueueState
    if (typeof v.acked === 'number' && Array.isArray(v.removed) && typeof v.scanFrom === 'number') return v
  } catch {}
  return { acked: 0, removed: [], scanFrom: 1 }
}

function encode (d: Downlink): Buffer {
  const topicBytes = Buffer.byteLength(d.topic, 'utf8')
  const buf = Buffer.allocUnsafe(FIXED_BYTES + topicBytes + d.payload.length)
  buf.writeUInt32BE(Math.floor(d.seq / TWO_32), 0)
  buf.writeUInt32BE(d.seq % TWO_32, 4)
  buf.writeUInt32BE(Math.floor(d.expiresAtMs / TWO_32), 8)
  buf.writeUInt32BE(d.expiresAtMs % TWO_32, 12)
  buf.writeUInt8(d.qos, 16)
  buf.writeUInt8(d.retain ? 1 : 0, 17)
  buf.writeUInt16BE(topicBytes, 18)
  buf.write(d.topic, FIXED_BYTES, 'utf8')
  d.payload.copy(buf, FIXED_BYTES + topicBytes)
  return buf
}

function decode (edgeId: string, data: Uint8Array): Downlink | undefined {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  if (buf.length < FIXED_BYTES) return undefined
  const topicBytes = buf.readUInt16BE(18)
  if (FIXED_BYTES + topicBytes > buf.length) return undefined
  const qos = buf.readUInt8(16)
  if (qos > 2) return undefined
  return {
    edgeId,
    seq: buf.readUInt32BE(0) * TWO_32 + buf.readUInt32BE(4),
    expiresAtMs: buf.readUInt32BE(8) * TWO_32 + buf.readUInt32BE(12),
    qos: qos as QoSLevel,
    retain: (buf.readUInt8(17) & 1) === 1,
    topic: buf.toString('utf8', FIXED_BYTES, FIXED_BYTES + topicBytes),
    payload: Buffer.from(buf.subarray(FIXED_BYTES + topicBytes))
  }
}

export class Downlinks {
  // Calls for one edge from this process run one at a time: compare-and-set on the counter and
  // the queue state then only races other nodes, not our own concurrent calls.
  private readonly tails = new Map<string, Promise<unknown>>()

  constructor (
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly kv: KV,
    private readonly names: StoreNames,
    private readonly publishTimeoutMs: number
  ) {}

  private async serial<T> (edgeId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(edgeId) ?? Promise.resolve()
    const run = prev.then(fn, fn)
    this.tails.set(edgeId, run)
    try {
      return await run
    } finally {
      if (this.tails.get(edgeId) === run) this.tails.delete(edgeId)
    }
  }

  async enqueue (edgeId: string, input: DownlinkInput): Promise<Downlink> {
    return await this.serial(edgeId, async () => {
      const seq = await this.nextSeq(edgeId)
      const d: Downlink = { ...input, payload: Buffer.from(input.payload), edgeId, seq }
      await this.js.publish(downlinkSubject(this.names, edgeId), encode(d), {
        msgID: `${encodeToken(edgeId)}:${seq}`,
        timeout: this.publishTimeoutMs
      })
      return d
    })
  }

  async pending (edgeId: string, afterSeq: number, nowMs: number, max: number): Promise<PendingDownlinks> {
    return await this.serial(edgeId, async () => {
      for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
        const key = stateKey(edgeId)
        const entry = await getEntry(this.kv, key)
        const state = decodeState(liveValue(entry))
        const removed = new Set(state.removed)
        const live: Downlink[] = []
        const newlyExpired: number[] = []
        for (const [, d] of await this.scan(edgeId, state.scanFrom)) {
          if (d.seq <= state.acked || removed.has(d.seq)) continue
          if (d.expiresAtMs !== 0 && d.expiresAtMs <= nowMs) newlyExpired.push(d.seq)
          else if (d.seq > afterSeq) live.push(d)
        }
        if (newlyExpired.length > 0) {
          const next: QueueState = { ...state, removed: [...state.removed, ...newlyExpired].slice(-MAX_REMOVED) }
          // Lost the race: another node changed the queue; look again.
          if (!await casWrite(this.kv, key, encodeJson(next), entry)) continue
        }
        // Two nodes enqueueing for one edge at once can store seq n+1 before n: order by seq.
        live.sort((a, b) => a.seq - b.seq)
        return { downlinks: live.slice(0, max), expired: newlyExpired.length }
      }
      throw tributaryError('TRIB_ERR_STORE_IO', `downlink queue of edge ${edgeId} stayed contended`, { edgeId })
    })
  }

  async ack (edgeId: string, upToSeq: number): Promise<void> {
    await this.serial(edgeId, async () => {
      for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
        const key = stateKey(edgeId)
        const entry = await getEntry(this.kv, key)
        const state = decodeState(liveValue(entry))
        if (upToSeq <= state.acked) return
        const acked = upToSeq
        const removed = state.removed.filter((s) => s > acked)
        const gone = new Set(removed)
        // Advance scanFrom past the prefix of messages that are all acked or removed.
        let scanFrom = state.scanFrom
        for (const [streamSeq, d] of await this.scan(edgeId, state.scanFrom)) {
          if (d.seq > acked && !gone.has(d.seq)) break
          scanFrom = streamSeq + 1
        }
        if (await casWrite(this.kv, key, encodeJson({ acked, removed, scanFrom }), entry)) return
      }
      throw tributaryError('TRIB_ERR_STORE_IO', `downlink queue of edge ${edgeId} stayed contended`, { edgeId })
    })
  }

  // Named consumer positions share the bucket (small values, last write wins).
  async getCursor (name: string): Promise<number | undefined> {
    const raw = liveValue(await getEntry(this.kv, `cursor.${kvKey(name)}`))
    if (raw === undefined) return undefined
    const n = Number(Buffer.from(raw).toString('utf8'))
    return Number.isSafeInteger(n) ? n : undefined
  }

  async setCursor (name: string, seq: number): Promise<void> {
    await this.kv.put(`cursor.${kvKey(name)}`, Buffer.from(String(seq)))
  }

  // Downlinks not yet acked nor expired, over all edges. Scans: for stats, not for hot paths.
  async count (nowMs: number): Promise<number> {
    const info = await this.jsm.streams.info(this.names.downlinkStream, { subjects_filter: `${this.names.downlinkPrefix}.*` })
    let pending = 0
    for (const subject of Object.keys(info.state.subjects ?? {})) {
      const edgeId = edgeFromSubject(this.names.downlinkPrefix, subject)
      if (edgeId === undefined) continue
      const state = decodeState(liveValue(await getEntry(this.kv, stateKey(edgeId))))
      const removed = new Set(state.removed)
      for (const [, d] of await this.scan(edgeId, state.scanFrom)) {
        if (d.seq > state.acked && !removed.has(d.seq) && (d.expiresAtMs === 0 || d.expiresAtMs > nowMs)) pending++
      }
    }
    return pending
  }

  private async scan (edgeId: string, fromStreamSeq: number): Promise<Array<[number, Downlink]>> {
    const subject = downlinkSubject(this.names, edgeId)
    const out: Array<[number, Downlink]> = []
    let seq = Math.max(1, fromStreamSeq)
    while (out.length < MAX_SCAN) {
      const msg: StoredMsg | null = await this.jsm.streams.getMessage(this.names.downlinkStream, { seq, next_by_subj: subject } as unknown as { seq: number })
      if (msg === null) break
      const d = decode(edgeId, msg.data)
      if (d !== undefined) out.push([msg.seq, d])
      seq = msg.seq + 1
    }
    return out
  }

  private async nextSeq (edgeId: string): Promise<number> {
    const key = `dlseq.${kvKey(edgeId)}`
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const entry = await getEntry(this.kv, key)
      const raw = liveValue(entry)
      const next = (raw === undefined ? 0 : Number(Buffer.from(raw).toString('utf8'))) + 1
      if (await casWrite(this.kv, key, Buffer.from(String(next)), entry)) return next
    }
    throw tributaryError('TRIB_ERR_STORE_IO', `downlink counter of edge ${edgeId} stayed contended`, { edgeId })
  }
}

function stateKey (edgeId: string): string {
  return `dlstate.${kvKey(edgeId)}`
}

function encodeJson (v: QueueState): Uint8Array {
  return Buffer.from(JSON.stringify(v))
}
