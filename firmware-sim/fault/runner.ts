// Applies a fault schedule to a proxy relative to the start of the run.
import type { Logger } from '../../src/log/index.js'
import type { FaultProxy } from './proxy.js'
import type { Fault } from './schedule.js'

export interface AppliedFault { spec: string, startedAtMs: number, endedAtMs: number | null }

export class FaultRunner {
  readonly applied: AppliedFault[] = []
  private readonly timers: NodeJS.Timeout[] = []

  constructor (private readonly proxy: FaultProxy, private readonly faults: readonly Fault[], private readonly log: Logger) {}

  start (): void {
    const t0 = Date.now()
    for (const f of this.faults) {
      this.timers.push(setTimeout(() => {
        const record: AppliedFault = { spec: f.spec, startedAtMs: Date.now() - t0, endedAtMs: null }
        this.applied.push(record)
        this.begin(f)
        this.timers.push(setTimeout(() => { this.end(f); record.endedAtMs = Date.now() - t0 }, f.durationMs))
      }, f.atMs))
    }
  }

  private begin (f: Fault): void {
    this.log.info({ fault: f.spec }, 'fault begins')
    switch (f.kind) {
      case 'cut': this.proxy.cut(); break
      case 'blackhole': this.proxy.startBlackhole(); break
      case 'latency': this.proxy.latencyMs = f.amount; break
      case 'throttle': this.proxy.throttleBytesPerSec = f.amount; break
    }
  }

  private end (f: Fault): void {
    this.log.info({ fault: f.spec }, 'fault ends')
    switch (f.kind) {
      case 'cut': this.proxy.endCut(); break
      case 'blackhole': this.proxy.endBlackhole(); break
      case 'latency': this.proxy.latencyMs = 0; break
      case 'throttle': this.proxy.throttleBytesPerSec = 0; break
    }
  }

  stop (): void {
    for (const t of this.timers) clearTimeout(t)
  }
}
