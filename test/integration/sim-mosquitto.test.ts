// The simulator's accounting proven on a broker no one here wrote: Debian mosquitto, started
// by the test on a free loopback port.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { silentLogger } from '../../src/log/index.js'
import { runSim, type SimRunOptions } from '../../firmware-sim/run.js'
import { runLoad } from '../../firmware-sim/load/run.js'
import { runIdle } from '../../firmware-sim/load/idle.js'
import type { DeviceSpec } from '../../firmware-sim/device.js'
import { mosquittoPath, startMosquitto, type Mosquitto } from '../helpers/mosquitto.js'

const spec: DeviceSpec = {
  group: 'sensors', topicTemplate: 'devices/{id}/telemetry', qos: 1, payload: 'json', payloadBytes: 64, sensors: ['temperature', 'humidity'],
  session: 'clean', keepaliveMs: 10_000, inflight: 16, queueLimit: 1000, ratePerSec: 20, maxMessages: 0, burstEveryMs: 0, burstSize: 0, backoffMinMs: 50, backoffMaxMs: 1000, connectTimeoutMs: 5000
}

function options (broker: string, over: Partial<SimRunOptions> = {}): SimRunOptions {
  return { broker, groups: [{ spec, count: 50 }], durationMs: 1500, idPrefix: 'mtest', rampPerSec: 2000, seed: 7, faults: [], commandRatePerSec: 0, checkPrefix: '', drainTimeoutMs: 10_000, statusIntervalMs: 1000, ...over }
}

let mosq: Mosquitto | undefined
before(async () => {
  const bin = mosquittoPath()
  if (bin === undefined) {
    if (process.env.CI === 'true') throw new Error('mosquitto not found (CI=true: required)')
    return
  }
  mosq = await startMosquitto(bin, { websockets: true })
})
after(async () => { await mosq?.stop() })

test('devices against mosquitto: JSON and binary groups, QoS 1, zero loss, commands answered', async (t) => {
  if (mosq === undefined) { t.skip('mosquitto not installed'); return }
  const report = await runSim(options(mosq.url, {
    groups: [{ spec, count: 40 }, { spec: { ...spec, group: 'binary', payload: 'binary', payloadBytes: 100, ratePerSec: 30 }, count: 10 }],
    commandRatePerSec: 40
  }), silentLogger())
  assert.ok(report.sent >= 50 * 10, `sent ${report.sent}`)
  assert.equal(report.received, report.sent)
  assert.equal(report.lost, 0)
  assert.equal(report.foreign, 0)
  assert.equal(report.latencyMs.count, report.received + report.duplicates)
  assert.equal(report.fleet.connects, 50)
  assert.ok(report.commands !== null && report.commands.sent > 0, 'commands were sent')
  assert.equal(report.commands.replied, report.commands.sent)
  assert.ok(report.fleet.commandsHandled >= report.commands.replied)
})

test('the checker reports loss it cannot see (subscription that matches nothing)', async (t) => {
  if (mosq === undefined) { t.skip('mosquitto not installed'); return }
  const report = await runSim(options(mosq.url, { groups: [{ spec, count: 5 }], durationMs: 500, checkFilter: 'elsewhere/+', drainTimeoutMs: 300 }), silentLogger())
  assert.ok(report.sent > 0)
  assert.equal(report.received, 0)
  assert.equal(report.lost, report.sent)
  assert.equal(report.ok, false)
  assert.equal(report.problems.length, 5)
  assert.equal(report.problems[0].lostSeqs[0], 1)
})

test('devices over WebSocket (ws://) to mosquitto', async (t) => {
  if (mosq?.wsPort === undefined) { t.skip('mosquitto not installed'); return }
  const report = await runSim(options(`ws://127.0.0.1:${mosq.wsPort}/`, { groups: [{ spec, count: 10 }], checkUrl: mosq.url }), silentLogger())
  assert.ok(report.sent > 0)
  assert.equal(report.lost, 0)
  assert.equal(report.fleet.connects, 10)
})

test('load mode, QoS 1 paced: every acked message delivered once and in order', async (t) => {
  if (mosq === undefined) { t.skip('mosquitto not installed'); return }
  const r = await runLoad({ broker: mosq.url, qos: 1, ratePerSec: 2000, connections: 2, subscribers: 2, window: 32, payloadBytes: 64, durationMs: 1000, drainTimeoutMs: 5000, idPrefix: 'mtest' }, silentLogger())
  assert.ok(r.published >= 1000, `published ${r.published}`)
  assert.equal(r.acked, r.published)
  assert.equal(r.deliveries, r.published * 2)
  assert.equal(r.gaps, 0)
  assert.equal(r.outOfOrder, 0)
  assert.equal(r.latencyMs.count, r.deliveries)
})

test('load mode, QoS 0 max rate: publishes and accounts deliveries', async (t) => {
  if (mosq === undefined) { t.skip('mosquitto not installed'); return }
  const r = await runLoad({ broker: mosq.url, qos: 0, ratePerSec: 0, connections: 2, subscribers: 1, window: 1, payloadBytes: 64, durationMs: 500, drainTimeoutMs: 5000, idPrefix: 'mtest' }, silentLogger())
  assert.ok(r.published > 0)
  assert.equal(r.deliveries + r.undelivered, r.published)
  assert.equal(r.outOfOrder, 0)
  assert.ok(r.generatorCpuCores > 0)
})

test('idle mode holds N connections', async (t) => {
  if (mosq === undefined) { t.skip('mosquitto not installed'); return }
  const r = await runIdle({ broker: mosq.url, connections: 300, rampPerSec: 5000, holdMs: 200, idPrefix: 'mtest' }, silentLogger())
  assert.equal(r.connected, 300)
  assert.equal(r.failed, 0)
})

test('checker with a topic prefix, as at the cloud end of a bridge', async (t) => {
  if (mosq === undefined) { t.skip('mosquitto not installed'); return }
  const report = await runSim(options(mosq.url, {
    groups: [{ spec: { ...spec, topicTemplate: 'up/edge-7/devices/{id}/telemetry' }, count: 5 }],
    checkPrefix: 'up/edge-7/',
    checkFilter: 'devices/+/telemetry'
  }), silentLogger())
  assert.ok(report.sent > 0)
  assert.equal(report.lost, 0)
  assert.match(report.checkUrl, /up\/edge-7\/devices\/\+\/telemetry/)
})
