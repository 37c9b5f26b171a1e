// Publishes stored records to the cloud's MQTT front end as `up/{edge}/{topic}` (template),
// in store order, from a cursor kept in the store (so it resumes after a restart; the window
// between the last saved cursor and a crash is published again: at-least-once to subscribers,
// exactly-once in the store).
import type { Aedes, PublishPacket } from 'aedes'
import type { Logger } from '../src/log/index.js'
import type { CloudStats } from './metrics.js'
import type { CloudStore, StoredRecord } from './store/types.js'

const CURSOR = 'mqtt-dispatch'
// Records per store read: one batch of publishes in flight at a time bounds memory.
const READ_BATCH_RECORDS = 1000
const CURSOR_SAVE_INTERVAL_MS = 1000

export class CloudTopicTemplate {
  private readonly before: string
  private readonly between: string
  private readonly after: string
  private readonly edgeFirst: boolean

  constructor (template: string) {
    const e = template.indexOf('{edge}')
    const t = template.indexOf('{topic}')
    if (e === -1 || t === -1) throw new RangeError(`topic template "${template}" needs {edge} and {topic}`)
    this.edgeFirst = e < t
    const [first, firstLen, second, secondLen] = this.edgeFirst ? [e, 6, t, 7] : [t, 7, e, 6]
    this.before = template.slice(0, first)
    this.between = template.slice(first + firstLen, second)
    this.after = template.slice(second + secondLen)
  }

  render (edgeId: string, topic: string): string {
    return this.edgeFirst
      ? this.before + edgeId + this.between + topic + this.after
      : this.before + topic + this.between + edgeId + this.after
  }
}

export class Dispatcher {
  private seq = 0
  private stopped = false
  private running: Promise<void> | undefined
  private lastSaved = 0
  private savedSeq = -1
  private stopWake: (() => void) | undefined

  constructor (
    private readonly store: CloudStore,
    private readonly aedes: Aedes,
    private readonly template: CloudTopicTemplate,
    private readonly stats: CloudStats,
    private readonly logger: Logger
  ) {}

  async start (): Promise<void> {
    this.seq = (await this.store.getCursor(CURSOR)) ?? 0
    this.stats.dispatchSeq = this.seq
    this.logger.info({ fromSeq: this.seq }, 'dispatching stored records to MQTT subscribers')
    this.running = this.loop().catch((err: Error) => { if (!this.stopped) this.logger.error({ err }, 'dispatcher stopped on an error') })
  }

  private async loop (): Promise<void> {
    while (!this.stopped) {
      const b = await this.store.read(this.seq, { maxRecords: READ_BATCH_RECORDS })
      if (b.records.length === 0) {
        this.seq = b.nextSeq
        await this.saveCursor(false)
        await Promise.race([this.store.waitForData(this.seq), new Promise<void>((resolve) => { this.stopWake = resolve })])
        continue
      }
      await this.publishAll(b.records)
      this.seq = b.nextSeq
      this.stats.dispatchSeq = this.seq
      await this.saveCursor(false)
    }
  }

  // All publishes of a batch are issued at once and awaited together; aedes routes them in call
  // order to each subscriber.
  private async publishAll (records: StoredRecord[]): Promise<void> {
    await new Promise<void>((resolve) => {
      let left = records.length
      const done = (): void => { if (--left === 0) resolve() }
      for (const r of records) {
        const packet = {
          cmd: 'publish',
          topic: this.template.render(r.edgeId, r.topic),
          payload: r.payload,
          qos: r.qos,
          retain: r.retain,
          dup: false
        } as unknown as PublishPacket
        this.aedes.publish(packet, done)
      }
    })
    this.stats.dispatched += records.length
  }

  private async saveCursor (force: boolean): Promise<void> {
    const now = Date.now()
    if (this.seq === this.savedSeq || (!force && now - this.lastSaved < CURSOR_SAVE_INTERVAL_MS)) return
    this.lastSaved = now
    this.savedSeq = this.seq
    await this.store.setCursor(CURSOR, this.seq)
  }

  async stop (): Promise<void> {
    this.stopped = true
    this.stopWake?.()
    await this.running
    await this.saveCursor(true).catch(() => {})
  }
}
