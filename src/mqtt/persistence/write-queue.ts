// Ordered, group-committed writes to the MetaStore.
//
// Every persistence method updates its in-memory state synchronously and hands its MetaStore ops
// here. Units are committed in the order they were queued, many per LevelDB batch (one batch at a
// time, so commits also complete in order). A caller either waits for its unit's commit (what a
// client sees acknowledged: SUBACK, CONNACK's will, PUBREC's QoS 2 state) or not (the delivery
// path: storeRetained, queued copies, cursors), which keeps the delivery path's promises resolving
// in call order (DESIGN.md §4: aedes drops out-of-order deliveries).
// A committed unit survives a process crash (LevelDB has written it to its log file); it survives
// a power cut only with `sync` (not used: the commitlog is the durable record of messages).
import type { Logger } from '../../log/index.js'
import type { MetaOp, MetaStore } from '../../meta/types.js'

// Ops per LevelDB batch. Bounds the memory of one batch and how long a waiting caller waits
// behind a flood of background writes; a unit is never split (it stays atomic).
const MAX_BATCH_OPS = 2048

interface Unit {
  ops: readonly MetaOp[]
  resolve: (() => void) | null
  reject: ((err: Error) => void) | null
}

export class OrderedMetaWriter {
  private queue: Unit[] = []
  private writing = false
  private scheduled = false
  private idleWaiters: Array<() => void> = []
  private readonly run = (): void => { this.scheduled = false; this.next() }

  constructor (private readonly meta: MetaStore, private readonly logger: Logger) {}

  // Queues ops; failures are logged (TRIB_ERR_META_IO), nobody waits.
  write (ops: readonly MetaOp[]): void {
    if (ops.length === 0) return
    this.queue.push({ ops, resolve: null, reject: null })
    this.schedule()
  }

  // Queues ops and resolves once they are committed (rejects with the MetaStore's error).
  async writeAndWait (ops: readonly MetaOp[]): Promise<void> {
    if (ops.length === 0 && this.queue.length === 0 && !this.writing) return
    await new Promise<void>((resolve, reject) => {
      this.queue.push({ ops, resolve, reject })
      this.schedule()
    })
  }

  // Resolves when everything queued so far is committed (or failed).
  async flush (): Promise<void> {
    if (this.queue.length === 0 && !this.writing) return
    await new Promise<void>((resolve) => { this.idleWaiters.push(resolve) })
  }

  private schedule (): void {
    if (this.scheduled || this.writing) return
    this.scheduled = true
    // setImmediate, not a microtask: everything queued in this turn of the event loop goes into
    // one batch.
    setImmediate(this.run)
  }

  private next (): void {
    if (this.writing) return
    if (this.queue.length === 0) {
      const waiters = this.idleWaiters
      this.idleWaiters = []
      for (const w of waiters) w()
      return
    }
    let count = 0
    let take = 0
    while (take < this.queue.length && (take === 0 || count + this.queue[take].ops.length <= MAX_BATCH_OPS)) {
      count += this.queue[take].ops.length
      take++
    }
    const units = this.queue.splice(0, take)
    const ops: MetaOp[] = []
    for (const u of units) for (const op of u.ops) ops.push(op)
    this.writing = true
    this.meta.batch(ops).then(() => {
      this.writing = false
      for (const u of units) if (u.resolve !== null) u.resolve()
      this.next()
    }, (err: Error) => {
      this.writing = false
      let waited = false
      for (const u of units) if (u.reject !== null) { waited = true; u.reject(err) }
      if (!waited) this.logger.error({ code: 'TRIB_ERR_META_IO', err, ops: ops.length }, 'metadata write failed: session state since the last commit is lost on restart')
      this.next()
    })
  }
}
