// deploy/cloud/ must match the real program: cloud.yaml loads through the cloud schema (unknown
// or mistyped keys fail), the flags in the systemd unit and in compose.yaml are real flags, and
// nats.conf is accepted by the nats-server we ship against (`nats-server -t`).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import { loadConfig } from '../../src/config/index.js'
import { cloudSchema } from '../../src/config/cloud.js'
import { parseNatsServers } from '../../cloud/store/jetstream.js'
import { natsServerOrSkip } from '../helpers/nats-cluster.js'

const DEPLOY = fileURLToPath(new URL('../../deploy/cloud/', import.meta.url))

test('deploy/cloud/cloud.yaml loads through the cloud schema and selects the JetStream store', () => {
  const config = loadConfig(cloudSchema, { argv: ['--config', `${DEPLOY}cloud.yaml`], env: {} })
  assert.deepEqual(parseNatsServers(config.store), ['nats://nats-1.internal:4222', 'nats://nats-2.internal:4222', 'nats://nats-3.internal:4222'])
  assert.equal(config.storeReplicas, 3)
  assert.equal(config.storePrefix, 'TRIB')
  assert.equal(config.bridge.port, 9000)
  assert.equal(config.mqtt.port, 1884)
  assert.deepEqual(config.edgeTokens, ['edge-1=change-me', 'edge-2=change-me-too'])
})

test('the cloud flags in tributary-cloud.service and compose.yaml are real flags', () => {
  const unit = readFileSync(`${DEPLOY}tributary-cloud.service`, 'utf8')
  const exec = /^ExecStart=\S+ cloud (.*)$/m.exec(unit)
  assert.ok(exec !== null, 'ExecStart runs `tributary cloud`')
  const unitArgs = exec[1].replace('%H', 'host-1').replace('/etc/tributary/cloud.yaml', `${DEPLOY}cloud.yaml`).split(/\s+/)
  assert.equal(loadConfig(cloudSchema, { argv: unitArgs, env: {} }).nodeId, 'host-1')

  const compose = parse(readFileSync(`${DEPLOY}compose.yaml`, 'utf8')) as { services: Record<string, { command?: string[] }> }
  const clouds = Object.entries(compose.services).filter(([, s]) => s.command?.includes('cloud') === true)
  assert.ok(clouds.length >= 2, 'compose runs at least two cloud nodes')
  for (const [name, s] of clouds) {
    const args = (s.command as string[]).slice((s.command as string[]).indexOf('cloud') + 1)
    const config = loadConfig(cloudSchema, { argv: args, env: {} })
    assert.equal(parseNatsServers(config.store)?.length, 3, `${name}: --store lists the three NATS servers`)
    assert.equal(config.nodeId, name)
  }
})

test('deploy/cloud/nats.conf is a valid nats-server configuration', async (t) => {
  const bin = natsServerOrSkip(t)
  if (bin === undefined) return
  const out = await new Promise<{ code: number, text: string }>((resolve) => {
    execFile(bin, ['-c', `${DEPLOY}nats.conf`, '-t'], (err, stdout, stderr) => { resolve({ code: err === null ? 0 : (err as { code?: number }).code ?? 1, text: stdout + stderr }) })
  })
  assert.equal(out.code, 0, out.text)
  assert.match(out.text, /valid/)
})
