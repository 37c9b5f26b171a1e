// src/mqtt/quiet-debug.ts: after the patch, mqtt-packet's disabled loggers are parameterless
// no-ops, other packages' loggers and enabled ones are the real `debug` loggers, and mqtt-packet
// still parses. Each test file runs in its own process, so the patch does not leak elsewhere.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { quietMqttPacketDebug } from '../../src/mqtt/quiet-debug.js'

const require = createRequire(import.meta.url)
const fromMqttPacket = createRequire(require.resolve('mqtt-packet'))
type Logger = ((...args: unknown[]) => unknown) & { enabled: boolean, namespace: string, extend: (s: string) => Logger }

test('disabled mqtt-packet loggers become no-ops; others stay real; mqtt-packet still works', () => {
  assert.equal(require.cache[require.resolve('mqtt-packet')], undefined, 'mqtt-packet must not be loaded before the patch in this process')
  assert.equal(quietMqttPacketDebug(), true)
  const createDebug = fromMqttPacket('debug') as (ns: string) => Logger
  const quiet = createDebug('mqtt-packet:parser')
  assert.equal(quiet.name, 'debugDisabled')
  assert.equal(quiet.enabled, false)
  assert.equal(quiet.namespace, 'mqtt-packet:parser')
  assert.equal(quiet('x %d', 1), undefined)
  assert.equal(quiet.extend('sub').namespace, 'mqtt-packet:parser:sub')
  const other = createDebug('mqttjs:client')
  assert.equal(other.name, 'debug', 'a logger outside mqtt-packet is the real one')
  assert.equal(typeof (createDebug as unknown as { enable: unknown }).enable, 'function', 'the module API is forwarded')
  const mqttPacket = require('mqtt-packet') as typeof import('mqtt-packet')
  const parser = mqttPacket.parser({ protocolVersion: 4 })
  const got: string[] = []
  parser.on('packet', (p) => got.push(p.cmd))
  parser.parse(mqttPacket.generate({ cmd: 'puback', messageId: 3 }))
  assert.deepEqual(got, ['puback'])
})

test('DEBUG=mqtt-packet:* at start-up keeps the real, enabled loggers', () => {
  const here = dirname(fileURLToPath(import.meta.url))
  const script = `
    import { quietMqttPacketDebug } from ${JSON.stringify(`${here}/../../src/mqtt/quiet-debug.ts`)}
    import { createRequire } from 'node:module'
    quietMqttPacketDebug()
    const r = createRequire(createRequire(${JSON.stringify(import.meta.url)}).resolve('mqtt-packet'))
    const d = r('debug')('mqtt-packet:parser')
    console.log(JSON.stringify({ enabled: d.enabled, name: d.name }))`
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { env: { ...process.env, DEBUG: 'mqtt-packet:*' }, encoding: 'utf8' })
  const r = JSON.parse(out.trim().split('\n').pop()!) as { enabled: boolean, name: string }
  assert.equal(r.enabled, true)
  assert.equal(r.name, 'debug')
})
