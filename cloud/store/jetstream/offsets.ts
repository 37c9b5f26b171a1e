// A KV copy of each edge's committed offset, written after the chunk is stored, compare-and-set
// and only ever forward. The uplink chain (last chunk of the edge's subject) is the truth; this
// copy keeps a replay idempotent after retention removed an idle edge's last chunk.
// Writes are coalesced per edge and run in the background (one in flight per store): an edge
// writing 100 batches a second costs a handful of KV writes, not 100.
import type { KV } from '@nats-io/kv'
import type { Logger } from 'pino'
import { casWrite, getEntry, liveValue, MAX_CAS_ATTEMPTS } from './kv-util.js'
import { kvKey } from './subjects.js'

export class OffsetMirror {
  private readonly pending = new Map<string, number>()
  private running: Promise<void> | undefined

  constructor (private readonly kv: KV, private readonly log: Logger) {}

  async read (edgeId: string): Promise<number> {
    return decode(liveValue(await getEntry(this.kv, kvKey(edgeId))))
  }

  record (edgeId: string, offset: number): void {
    const cur = this.pending.get(edgeId)
    if (cur === undefined || offset > cur) this.pending.set(edgeId, offset)
    if (this.running === undefined) this.running = this.drain().finally(() => { this.running = undefined })
  }

  // Resolves when every recorded offset has been written (or given up on).
  async flush (): Promise<void> {
    while (this.running !== undefined) await this.running
  }

  private async drain (): Promise<void> {
    while (this.pending.size > 0) {
      const [edgeId, offset] = this.pending.entries().next().value as [string, number]
      this.pending.delete(edgeId)
      try {
        await this.writeForward(edgeId, offset)
      } catch (err) {
        // Not fatal: the chain still holds the truth; the next append records again.
        this.log.warn({ edgeId, err: (err as Error).message }, 'could not mirror committed offset to KV')
      }
    }
  }

  private async writeForward (edgeId: string, offset: number): Promise<void> {
    const key = kvKey(edgeId)
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const entry = await getEntry(this.kv, key)
      if (decode(liveValue(entry)) >= offset) return
      if (await casWrite(this.kv, key, Buffer.from(String(offset)), entry)) return
    }
  }
}

function decode (raw: Uint8Array | undefined): number {
  if (raw === undefined) return 0
  const n = Number(Buffer.from(raw).toString('utf8'))
  return Number.isSafeInteger(n) && n >= 0 ? n : 0
}
