// The fleet: creates devices, connects them at the configured ramp rate and drives all of them
// from one timer tick (publishing what is due, keepalives, reconnects).
import type { Logger } from '../src/log/index.js'
import { Device, newTotals, type DeviceSpec, type FleetContext, type FleetTotals } from './device.js'
import type { BrokerTarget } from './mqtt/transport.js'
import type { Rng } from './random.js'

export interface DeviceGroup {
  spec: DeviceSpec
  count: number
}

// 10 ms: fine enough for per-device rates up to ~100/s, coarse enough that 10,000 devices cost
// about a million cheap checks per second.
const TICK_MS = 10

export class Fleet {
  readonly devices: Device[] = []
  readonly totals: FleetTotals = newTotals()
  private timer: NodeJS.Timeout | null = null
  private started = 0
  private rampStartedAt = 0

  constructor (groups: readonly DeviceGroup[], idPrefix: string, target: BrokerTarget, runId: number, private readonly rampPerSec: number, rng: Rng, log: Logger) {
    const ctx: FleetContext = { target, runId, rng, log, totals: this.totals }
    for (const g of groups) {
      for (let i = 0; i < g.count; i++) {
        const index = this.devices.length
        this.devices.push(new Device(index, `${idPrefix}-${index}`, g.spec, ctx))
      }
    }
  }

  start (): void {
    this.rampStartedAt = Date.now()
    this.tick()
    this.timer = setInterval(() => { this.tick() }, TICK_MS)
  }

  get allStarted (): boolean { return this.started === this.devices.length }

  private tick (): void {
    const now = Date.now()
    if (this.started < this.devices.length) {
      const due = Math.min(this.devices.length, Math.floor((now - this.rampStartedAt) * this.rampPerSec / 1000) + 1)
      while (this.started < due) this.devices[this.started++].start(now)
    }
    const devices = this.devices
    for (let i = 0; i < this.started; i++) devices[i].tick(now)
  }

  stopProducing (): void {
    for (const d of this.devices) d.stopProducing()
  }

  // QoS 1 messages not yet acknowledged (in flight or queued), over all devices.
  get pending (): number {
    let n = 0
    for (const d of this.devices) n += d.pending
    return n
  }

  stop (): void {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    for (const d of this.devices) d.stop()
  }
}
