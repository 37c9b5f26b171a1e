// Edge leases held in one process (memory and embedded stores: one cloud node owns the store, so
// the table only fences two connections of the same edge on that node). The JetStream store keeps
// leases in a KV bucket with compare-and-set instead.
import type { Lease, LeaseOutcome } from './types.js'

export class LeaseTable {
  private readonly leases = new Map<string, Lease>()
  private epoch = 0

  acquire (edgeId: string, holder: string, ttlMs: number, nowMs: number): LeaseOutcome {
    const cur = this.leases.get(edgeId)
    if (cur !== undefined && cur.holder !== holder && cur.expiresAtMs > nowMs) {
      return { status: 'held', holder: cur.holder, expiresAtMs: cur.expiresAtMs }
    }
    // A new epoch even for the same holder: a reconnect fences the old connection's appends.
    const lease: Lease = { edgeId, holder, epoch: ++this.epoch, expiresAtMs: nowMs + ttlMs }
    this.leases.set(edgeId, lease)
    return { status: 'ok', lease }
  }

  renew (lease: Lease, ttlMs: number, nowMs: number): LeaseOutcome {
    const cur = this.leases.get(lease.edgeId)
    if (cur === undefined || cur.epoch !== lease.epoch) {
      return { status: 'held', holder: cur?.holder ?? '', expiresAtMs: cur?.expiresAtMs ?? 0 }
    }
    const renewed: Lease = { ...cur, expiresAtMs: nowMs + ttlMs }
    this.leases.set(lease.edgeId, renewed)
    return { status: 'ok', lease: renewed }
  }

  release (lease: Lease): void {
    const cur = this.leases.get(lease.edgeId)
    if (cur !== undefined && cur.epoch === lease.epoch) this.leases.delete(lease.edgeId)
  }

  // The holder that fences `lease`, or undefined when `lease` is current. Expiry alone does not
  // fence: only another acquisition does (an expired lease nobody took is still the newest).
  check (lease: Lease): string | undefined {
    const cur = this.leases.get(lease.edgeId)
    if (cur === undefined) return '(none)'
    return cur.epoch === lease.epoch ? undefined : cur.holder
  }
}
