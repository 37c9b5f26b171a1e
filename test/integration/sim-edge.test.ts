// 200 devices x 50 QoS 1 messages against the edge broker (a real `tributary edge` process,
// test/helpers/edge-process.ts): the checker reports zero loss. Also devices over WebSocket.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { silentLogger } from '../../src/log/index.js'
import { runSim, type SimRunOptions } from '../../firmware-sim/run.js'
import type { DeviceSpec } from '../../firmware-sim/device.js'
import { startEdge, type EdgeProcess } from '../helpers/edge-process.js'
import { tempDir } from '../helpers/net.js'

const spec: DeviceSpec = {
  group: 'edge', topicTemplate: 'devices/{id}/telemetry', qos: 1, payload: 'json', payloadBytes: 64, sensors: ['temperature'],
  session: 'clean', keepaliveMs: 30_000, inflight: 16, queueLimit: 1000, ratePerSec: 25, maxMessages: 50, burstEveryMs: 0, burstSize: 0, backoffMinMs: 100, backoffMaxMs: 2000, connectTimeoutMs: 10_000
}

function options (broker: string, over: Partial<SimRunOptions>): SimRunOptions {
  // The run ends when every device has sent its 50 messages; 30 s is only a bound.
  return { broker, groups: [{ spec, count: 200 }], durationMs: 30_000, idPrefix: `edgetest${process.pid}`, rampPerSec: 5000, seed: 11, faults: [], commandRatePerSec: 0, checkPrefix: '', drainTimeoutMs: 20_000, statusIntervalMs: 1000, ...over }
}

let dir: Awaited<ReturnType<typeof tempDir>>
let edge: EdgeProcess
before(async () => {
  dir = await tempDir('sim-edge')
  edge = await startEdge({ dataDir: join(dir.path, 'data') })
})
after(async () => {
  await edge?.stop()
  await dir?.remove()
})

test('200 devices x 50 QoS 1 messages through the edge broker: zero loss', async () => {
  const report = await runSim(options(edge.url, {}), silentLogger())
  assert.equal(report.sent, 200 * 50)
  assert.equal(report.lost, 0, JSON.stringify(report.problems.slice(0, 3)))
  assert.equal(report.received, report.sent)
  assert.equal(report.fleet.connects, 200)
})

test('devices over WebSocket to the edge broker, commands answered: zero loss', async () => {
  const report = await runSim(options(edge.wsUrl, { groups: [{ spec: { ...spec, maxMessages: 20 }, count: 20 }], checkUrl: edge.url, commandRatePerSec: 20, idPrefix: `edgews${process.pid}` }), silentLogger())
  assert.equal(report.sent, 20 * 20)
  assert.equal(report.lost, 0)
  assert.equal(report.fleet.connects, 20)
})
