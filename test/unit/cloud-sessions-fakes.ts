// Test doubles for cloud/sessions: a client that plays aedes' Client for a session follower, and
// two session managers over one record store.
import { silentLogger } from '../../src/log/index.js'
import { MemoryMetaStore } from '../../src/meta/memory.js'
import type { CloudTopicTemplate } from '../../cloud/dispatcher.js'
import { MetaSessionKV } from '../../cloud/sessions/kv.js'
import { SessionManager, type SessionClient } from '../../cloud/sessions/manager.js'
import type { CloudStore } from '../../cloud/store/types.js'

export interface FakeSent { payload: string, qos: number, messageId: number, dup: boolean }

// QoS>0 packets keep the follower's packet id (aedes' QoSPacket does); writes complete at once.
export class FakeClient implements SessionClient {
  clean = false
  closed = false
  readonly sent: FakeSent[] = []
  constructor (readonly id: string) {}
  deliverQoS (packet: object, cb: () => void): void {
    const p = packet as { payload: Buffer, qos: number, messageId?: number, dup: boolean }
    this.sent.push({ payload: p.payload.toString(), qos: p.qos, messageId: p.messageId ?? 0, dup: p.dup })
    setImmediate(cb)
  }

  close (): void { this.closed = true }
}

// Two session managers ("nodes" a and b) over one record store and one cloud store.
export function twoManagers (store: CloudStore, template: CloudTopicTemplate): { kv: MetaSessionKV, a: SessionManager, b: SessionManager, close: () => Promise<void> } {
  const kv = new MetaSessionKV(new MemoryMetaStore(), silentLogger())
  const opts = { kv, store, template, leaseTtlMs: 15_000, expiryMs: 3_600_000, windowMessages: 100, logger: silentLogger(), now: Date.now }
  const a = new SessionManager({ ...opts, nodeId: 'node-a' })
  const b = new SessionManager({ ...opts, nodeId: 'node-b' })
  a.start(); b.start()
  return { kv, a, b, close: async () => { await a.close(); await b.close(); await kv.close(); await store.close() } }
}
