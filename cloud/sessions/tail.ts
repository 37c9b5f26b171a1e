// One wait on the store's end for all followers of this node. Each idle follower waiting on the
// store itself would cost, with the JetStream store, a poll of the stream's end every 250 ms per
// session; here it is one per node, however many persistent sessions are connected.
// A follower waits at the position where its read found nothing, which is the store's end at
// that moment; the end only grows, so later waiters never wait below earlier ones, and one wait
// at the lowest position wakes everyone that has data.
import type { Logger } from '../../src/log/index.js'
import type { CloudStore } from '../store/types.js'

const RETRY_MS = 1000

interface Waiter { seq: number, resolve: () => void }

export class StoreTail {
  private waiters: Waiter[] = []
  private running = false
  private closed = false

  constructor (private readonly store: CloudStore, private readonly logger: Logger) {}

  // Resolves once the store holds data at or past `seq` (or the tail closes).
  async wait (seq: number): Promise<void> {
    if (this.closed) return
    await new Promise<void>((resolve) => {
      this.waiters.push({ seq, resolve })
      if (!this.running) { this.running = true; void this.run() }
    })
  }

  private async run (): Promise<void> {
    while (this.waiters.length > 0 && !this.closed) {
      let min = Infinity
      for (const w of this.waiters) if (w.seq < min) min = w.seq
      let end: number
      try {
        await this.store.waitForData(min)
        end = await this.store.endSeq()
      } catch (err) {
        this.logger.warn({ err }, 'waiting for new store data failed; retrying')
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS))
        continue
      }
      const still: Waiter[] = []
      for (const w of this.waiters) {
        if (w.seq < end || this.closed) w.resolve(); else still.push(w)
      }
      // A waiter below `min` that joined during the wait (not expected, see above) was resolved
      // too when end > its seq; one at or above end waits for the next round.
      this.waiters = still
    }
    this.running = false
  }

  close (): void {
    this.closed = true
    for (const w of this.waiters.splice(0)) w.resolve()
  }
}
