// Edge leases in a replicated KV bucket, with compare-and-set on the key's revision: two cloud
// nodes racing for an edge cannot both win. The value carries an epoch that grows on every
// acquisition (the fencing token appends carry) and an absolute expiry. A release keeps the key
// (with expiresAtMs 0) so the epoch keeps growing: a deleted key would restart epochs at 1 and
// let an old lease match a new one.
import type { KV } from '@nats-io/kv'
import type { Lease, LeaseOutcome } from '../types.js'
import { tributaryError } from '../../../src/errors/index.js'
import { casWrite, getEntry, liveValue, MAX_CAS_ATTEMPTS } from './kv-util.js'
import { kvKey } from './subjects.js'

interface LeaseValue { holder: string, epoch: number, expiresAtMs: number }

function decode (raw: Uint8Array | undefined): LeaseValue | undefined {
  if (raw === undefined) return undefined
  try {
    const v = JSON.parse(Buffer.from(raw).toString('utf8')) as LeaseValue
    return typeof v.holder === 'string' && typeof v.epoch === 'number' && typeof v.expiresAtMs === 'number' ? v : undefined
  } catch { return undefined }
}

function encode (v: LeaseValue): Uint8Array {
  return Buffer.from(JSON.stringify(v))
}

export class KvLeases {
  constructor (private readonly kv: KV) {}

  async acquire (edgeId: string, holder: string, ttlMs: number, nowMs: number): Promise<LeaseOutcome> {
    const key = kvKey(edgeId)
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const entry = await getEntry(this.kv, key)
      const cur = decode(liveValue(entry))
      if (cur !== undefined && cur.holder !== holder && cur.expiresAtMs > nowMs) {
        return { status: 'held', holder: cur.holder, expiresAtMs: cur.expiresAtMs }
      }
      // A new epoch even for the same holder: a reconnect fences the old connection's appends.
      const next: LeaseValue = { holder, epoch: (cur?.epoch ?? 0) + 1, expiresAtMs: nowMs + ttlMs }
      if (await casWrite(this.kv, key, encode(next), entry)) return { status: 'ok', lease: { edgeId, ...next } }
    }
    throw tributaryError('TRIB_ERR_STORE_IO', `lease for edge ${edgeId} stayed contended`, { edgeId })
  }

  async renew (lease: Lease, ttlMs: number, nowMs: number): Promise<LeaseOutcome> {
    const key = kvKey(lease.edgeId)
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const entry = await getEntry(this.kv, key)
      const cur = decode(liveValue(entry))
      if (cur === undefined || cur.epoch !== lease.epoch) {
        return { status: 'held', holder: cur?.holder ?? '', expiresAtMs: cur?.expiresAtMs ?? 0 }
      }
      const next: LeaseValue = { ...cur, expiresAtMs: nowMs + ttlMs }
      if (await casWrite(this.kv, key, encode(next), entry)) return { status: 'ok', lease: { edgeId: lease.edgeId, ...next } }
    }
    throw tributaryError('TRIB_ERR_STORE_IO', `lease for edge ${lease.edgeId} stayed contended`, { edgeId: lease.edgeId })
  }

  async release (lease: Lease): Promise<void> {
    const key = kvKey(lease.edgeId)
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const entry = await getEntry(this.kv, key)
      const cur = decode(liveValue(entry))
      if (cur === undefined || cur.epoch !== lease.epoch) return
      if (await casWrite(this.kv, key, encode({ ...cur, expiresAtMs: 0 }), entry)) return
    }
  }

  // The holder that fences `lease`, or undefined when `lease` is current. Expiry alone does not
  // fence (as in the embedded store): only another acquisition does.
  async check (lease: Lease): Promise<string | undefined> {
    const cur = decode(liveValue(await getEntry(this.kv, kvKey(lease.edgeId))))
    if (cur === undefined) return '(none)'
    return cur.epoch === lease.epoch ? undefined : cur.holder
  }
}
