// Faults injected by the simulator's TCP proxy: a cut with persistent sessions (reconnect,
// zero loss, duplicates counted) against mosquitto and stock aedes, and a blackhole detected
// through keepalive.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type AddressInfo, type Server } from 'node:net'
import { Aedes } from 'aedes'
import { silentLogger } from '../../src/log/index.js'
import { runSim, type SimRunOptions, type SimStatus } from '../../firmware-sim/run.js'
import type { DeviceSpec } from '../../firmware-sim/device.js'
import { parseFault } from '../../firmware-sim/fault/schedule.js'
import { mosquittoPath, startMosquitto } from '../helpers/mosquitto.js'

const spec: DeviceSpec = {
  group: 'sensors', topicTemplate: 'devices/{id}/telemetry', qos: 1, payload: 'binary', payloadBytes: 64, sensors: [],
  session: 'persistent', keepaliveMs: 10_000, inflight: 16, queueLimit: 1000, ratePerSec: 20, maxMessages: 0, burstEveryMs: 0, burstSize: 0, backoffMinMs: 100, backoffMaxMs: 800, connectTimeoutMs: 2000
}

function options (broker: string, over: Partial<SimRunOptions>): SimRunOptions {
  return { broker, groups: [{ spec, count: 30 }], durationMs: 4000, idPrefix: `ftest${process.pid}`, rampPerSec: 2000, seed: 3, faults: [], commandRatePerSec: 0, checkPrefix: '', drainTimeoutMs: 15_000, statusIntervalMs: 100, ...over }
}

async function startAedes (): Promise<{ url: string, close: () => Promise<void> }> {
  const broker = await Aedes.createBroker()
  const server: Server = createServer(broker.handle)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    url: `mqtt://127.0.0.1:${port}`,
    close: async () => {
      server.close()
      await new Promise<void>((resolve) => { broker.close(() => { resolve() }) })
    }
  }
}

const cleanups: Array<() => Promise<void>> = []
after(async () => { for (const c of cleanups) await c() })

function assertCutSurvived (report: Awaited<ReturnType<typeof runSim>>, devices: number): void {
  assert.equal(report.faults.length, 1)
  assert.ok(report.fleet.reconnects >= devices, `every device lost its connection (reconnects ${report.fleet.reconnects})`)
  assert.equal(report.fleet.connects, report.fleet.reconnects + devices)
  assert.ok(report.sent > devices * 40, `sent ${report.sent}`)
  assert.equal(report.lost, 0, JSON.stringify(report.problems.slice(0, 3)))
  assert.equal(report.received, report.sent)
  // Every delivery was either a first arrival or a counted duplicate: nothing hidden.
  assert.equal(report.latencyMs.count, report.received + report.duplicates)
}

test('2 s cut mid-run, persistent sessions, mosquitto: reconnect, zero loss, duplicates counted', async (t) => {
  const bin = mosquittoPath()
  if (bin === undefined) {
    if (process.env.CI === 'true') throw new Error('mosquitto not found (CI=true: required)')
    t.skip('mosquitto not installed'); return
  }
  const mosq = await startMosquitto(bin)
  cleanups.push(mosq.stop)
  const report = await runSim(options(mosq.url, { faults: [parseFault('at=1s cut=2s', 'fault[0]')] }), silentLogger())
  assertCutSurvived(report, 30)
})

test('2 s cut mid-run, persistent sessions, stock aedes in-process: reconnect, zero loss', async () => {
  const aedes = await startAedes()
  cleanups.push(aedes.close)
  const report = await runSim(options(aedes.url, { faults: [parseFault('at=1s cut=2s', 'fault[0]')] }), silentLogger())
  assertCutSurvived(report, 30)
})

test('blackhole: the dead link is detected through keepalive and devices reconnect', async () => {
  const aedes = await startAedes()
  cleanups.push(aedes.close)
  // keepalive 1 s: silence is declared dead after 1.5 s. The blackhole lasts 5 s (1 s..6 s):
  // sampled at 4 s in, every device must already have given up on its dead link by itself
  // (the proxy closes nothing before the blackhole ends).
  const statuses: SimStatus[] = []
  const report = await runSim(options(aedes.url, {
    groups: [{ spec: { ...spec, keepaliveMs: 1000, ratePerSec: 10 }, count: 10 }],
    durationMs: 7000,
    faults: [parseFault('at=1s blackhole=5s', 'fault[0]')],
    onStatus: (s) => { statuses.push(s) }
  }), silentLogger())
  const during = statuses.filter((s) => s.elapsedMs >= 4000 && s.elapsedMs < 5500)
  assert.ok(during.length > 0)
  assert.ok(during[0].reconnects >= 10, `reconnects during the blackhole: ${during[0].reconnects}`)
  assert.ok(report.fleet.keepaliveTimeouts >= 10, `keepalive timeouts ${report.fleet.keepaliveTimeouts}`)
  assert.equal(report.fleet.online, 10, 'all devices back online')
  assert.equal(report.lost, 0, JSON.stringify(report.problems.slice(0, 3)))
})

test('latency and throttle faults delay messages but lose none', async () => {
  const aedes = await startAedes()
  cleanups.push(aedes.close)
  const report = await runSim(options(aedes.url, {
    groups: [{ spec: { ...spec, session: 'clean', ratePerSec: 10 }, count: 10 }],
    durationMs: 2500,
    faults: [parseFault('at=0s latency=200ms for=1s', 'fault[0]'), parseFault('at=1s throttle=1KiB for=1s', 'fault[1]')]
  }), silentLogger())
  assert.equal(report.faults.length, 2)
  assert.ok(report.sent > 0)
  assert.equal(report.lost, 0)
  assert.equal(report.fleet.reconnects, 0)
  // Every chunk was held at least 200 ms by the proxy during the first second, so the slowest
  // message took at least that long (a lower bound, not a timing expectation).
  assert.ok(report.latencyMs.max >= 200, `max latency ${report.latencyMs.max} ms`)
})
