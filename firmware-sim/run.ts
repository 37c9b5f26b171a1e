// One simulator run in device mode, as an in-process API (tests call it; main.ts wraps it):
// checker first (so nothing is missed), then the fault proxy, the fleet and the commander;
// after the duration devices stop producing, the run drains (acks and deliveries) up to a
// deadline and the report is built.
import { randomInt } from 'node:crypto'
import { tributaryError } from '../src/errors/index.js'
import type { Logger } from '../src/log/index.js'
import { Checker } from './checker.js'
import { Commander } from './commander.js'
import { Fleet, type DeviceGroup } from './fleet.js'
import { FaultProxy } from './fault/proxy.js'
import { FaultRunner } from './fault/runner.js'
import type { Fault } from './fault/schedule.js'
import { parseBrokerUrl, viaProxy } from './mqtt/transport.js'
import { createRng } from './random.js'
import { buildReport, type SimReport } from './report.js'

export interface SimRunOptions {
  broker: string
  groups: readonly DeviceGroup[]
  durationMs: number
  idPrefix: string
  rampPerSec: number
  seed: number
  faults: readonly Fault[]
  commandRatePerSec: number
  checkUrl?: string
  checkFilter?: string
  checkPrefix: string
  drainTimeoutMs: number
  statusIntervalMs: number
  scenarioName?: string
  onStatus?: (status: SimStatus) => void
  // Aborting ends the publishing phase early (SIGINT); the run still drains and reports.
  signal?: AbortSignal
}

export interface SimStatus {
  elapsedMs: number
  online: number
  devices: number
  published: number
  acked: number
  received: number
  reconnects: number
}

function defaultFilter (groups: readonly DeviceGroup[]): string {
  const templates = new Set(groups.map((g) => g.spec.topicTemplate))
  // One template: subscribe exactly to it; several: everything (foreign messages are counted).
  return templates.size === 1 ? [...templates][0].replaceAll('{id}', '+') : '#'
}

async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  await new Promise<void>((resolve) => {
    const t = setTimeout(done, ms)
    function done (): void { clearTimeout(t); signal?.removeEventListener('abort', done); resolve() }
    signal?.addEventListener('abort', done, { once: true })
  })
}

export async function runSim (opts: SimRunOptions, log: Logger): Promise<SimReport> {
  const runId = randomInt(1, 2 ** 31)
  const rng = createRng(opts.seed)
  const target = parseBrokerUrl(opts.broker, 'broker')
  const checkTarget = parseBrokerUrl(opts.checkUrl ?? opts.broker, 'check.url')
  const qos = opts.groups.some((g) => g.spec.qos === 1) ? 1 : 0
  const filter = opts.checkPrefix + (opts.checkFilter ?? defaultFilter(opts.groups))
  const cpuStart = process.cpuUsage()
  let maxRss = process.memoryUsage.rss()

  const checker = new Checker({ target: checkTarget, filter, qos, runId, clientId: `${opts.idPrefix}-checker-${runId}`, log: log.child({ component: 'checker' }), connectTimeoutMs: 10_000 })
  try {
    await checker.start()
  } catch (err) {
    throw tributaryError('TRIB_ERR_SIM_CONNECT', (err as Error).message, { url: checkTarget.url }, err)
  }
  let commander: Commander | null = null
  let proxy: FaultProxy | null = null
  let faults: FaultRunner | null = null
  let fleet: Fleet | null = null
  let status: NodeJS.Timeout | null = null
  const t0 = Date.now()
  try {
    if (opts.commandRatePerSec > 0) {
      commander = new Commander(target, `${opts.idPrefix}-commander-${runId}`, log.child({ component: 'commander' }))
      await commander.start()
    }
    let deviceTarget = target
    if (opts.faults.length > 0) {
      proxy = new FaultProxy(target.host, target.port, log.child({ component: 'fault-proxy' }))
      const port = await proxy.listen()
      deviceTarget = viaProxy(target, '127.0.0.1', port)
      faults = new FaultRunner(proxy, opts.faults, log.child({ component: 'faults' }))
    }
    const f = new Fleet(opts.groups, opts.idPrefix, deviceTarget, runId, opts.rampPerSec, rng, log.child({ component: 'fleet' }))
    fleet = f
    const received = (): number => { let n = 0; for (const a of checker.accounts) if (a !== undefined) n += a.received; return n }
    let commandCredit = 0
    let rampMs: number | null = null
    let lastStatusAt = Date.now()
    status = setInterval(() => {
      const now = Date.now()
      maxRss = Math.max(maxRss, process.memoryUsage.rss())
      if (rampMs === null && f.totals.firstConnects === f.devices.length) rampMs = now - t0
      if (commander !== null && f.allStarted) {
        commandCredit += opts.commandRatePerSec * 0.1
        while (commandCredit >= 1 && f.devices.length > 0) {
          commandCredit--
          const d = f.devices[Math.floor(rng() * f.devices.length)]
          if (d.state === 'online') commander.send(d.id, Math.round((rng() - 0.5) * 20) / 10)
        }
        commander.expire(performance.timeOrigin + performance.now())
        commander.keepAlive(now)
      }
      if (opts.onStatus !== undefined && now - lastStatusAt >= opts.statusIntervalMs) {
        lastStatusAt = now
        const t = f.totals
        opts.onStatus({ elapsedMs: now - t0, online: t.online, devices: f.devices.length, published: t.published, acked: t.acked, received: received(), reconnects: t.reconnects })
      }
    }, 100)
    f.start()
    faults?.start()
    // Publishing phase: the duration (0 = until aborted), or until every device has sent its
    // --messages quota.
    const end = opts.durationMs === 0 ? Infinity : Date.now() + opts.durationMs
    const quotaDone = (): boolean => f.devices.every((d) => d.spec.maxMessages > 0 && d.seq >= d.spec.maxMessages)
    while (Date.now() < end && opts.signal?.aborted !== true && !quotaDone()) await sleep(Math.min(50, end - Date.now()), opts.signal)
    f.stopProducing()
    // Drain: every QoS 1 message acked and every sent message seen by the checker, or deadline.
    const deadline = Date.now() + opts.drainTimeoutMs
    const allSeen = (): boolean => f.devices.every((d) => d.seq === 0 || (checker.accounts[d.index]?.receivedUpTo(d.seq) ?? 0) === d.seq)
    while (Date.now() < deadline && (f.pending > 0 || !allSeen() || (commander?.pending ?? 0) > 0)) await sleep(50)
    if (f.totals.connects === 0 && f.devices.length > 0) {
      const reason = f.devices[0].lastCloseReason
      throw tributaryError('TRIB_ERR_SIM_CONNECT', `no device could connect to ${deviceTarget.url}${reason === '' ? '' : `: ${reason}`}`, { url: deviceTarget.url })
    }
    maxRss = Math.max(maxRss, process.memoryUsage.rss())
    return buildReport(f, checker, commander, {
      runId,
      broker: target.url,
      checkUrl: checkTarget.url + (filter === '' ? '' : ` (${filter})`),
      scenario: opts.scenarioName ?? null,
      durationMs: Date.now() - t0,
      rampMs,
      faults: faults?.applied ?? [],
      maxRssBytes: maxRss,
      cpu: process.cpuUsage(cpuStart)
    })
  } finally {
    if (status !== null) clearInterval(status)
    faults?.stop()
    fleet?.stop()
    commander?.stop()
    checker.stop()
    await proxy?.close()
  }
}
