// The bridge over TLS: a cloud node with a certificate serves wss://; an edge that trusts the
// certificate's CA (--cloud-ca) replicates through it; an edge that does not trust it refuses the
// link (nothing reaches the cloud) and keeps its messages for later.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import pino from 'pino'
import type { CloudNode } from '../../cloud/node.js'
import type { Logger } from '../../src/log/index.js'
import { tempDir, waitFor } from '../helpers/net.js'
import { runEdgeCli } from '../helpers/edge-process.js'
import { mqttClient, startTestCloud, startTestEdge, storeContents, type TestEdge } from './bridge-helpers.js'

let certDir: { path: string, remove: () => Promise<void> }
let cert: string
let key: string

before(async () => {
  certDir = await tempDir('bridge-wss-cert')
  cert = join(certDir.path, 'cert.pem')
  key = join(certDir.path, 'key.pem')
  // Self-signed, valid for the loopback address the edge dials (a private CA in a real fleet).
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
    '-days', '1', '-subj', '/CN=tributary-test-cloud', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' })
})

after(async () => { await certDir?.remove() })

// A cloud serving wss:// with the test certificate and a data dir for one edge; the body starts
// the edge with its own bridge flags. Afterwards the edge, the cloud and both dirs are gone.
async function withTlsCloud (tag: string, body: (cloud: CloudNode, startEdge: (args: string[], logger?: Logger) => Promise<TestEdge>) => Promise<void>): Promise<void> {
  const cdir = await tempDir(`bridge-wss-cloud-${tag}`)
  const edir = await tempDir(`bridge-wss-edge-${tag}`)
  const cloud = await startTestCloud(cdir.path, ['--bridge-tls-cert', cert, '--bridge-tls-key', key])
  let edge: TestEdge | undefined
  try {
    await body(cloud, async (args, logger) => (edge = await startTestEdge(edir.path, args, logger)))
  } finally {
    await edge?.close()
    await cloud.close()
    await edir.remove()
    await cdir.remove()
  }
}

test('an edge that trusts the cloud certificate replicates over wss://', async () => {
  await withTlsCloud('trusted', async (cloud, startEdge) => {
    assert.match(cloud.bridgeUrl, /^wss:\/\//)
    const edge = await startEdge(['--cloud-url', cloud.bridgeUrl, '--cloud-ca', cert, '--edge-id', 'edge-a', '--cloud-token', 'secret-a'])
    const device = await mqttClient(edge.mqttPort)
    for (let i = 0; i < 20; i++) await device.publishAsync('devices/d1/telemetry', `m${i}`, { qos: 1 })
    device.end(true)
    await waitFor('20 messages in the cloud store over TLS', async () => (await storeContents(cloud)).length >= 20, 15_000)
    const stored = await storeContents(cloud)
    assert.deepEqual(stored.map((r) => r.payload), Array.from({ length: 20 }, (_, i) => `m${i}`))
  })
})

test('an edge that does not trust the certificate is refused by TLS and keeps its messages', async () => {
  await withTlsCloud('untrusted', async (cloud, startEdge) => {
    const lines: string[] = []
    const logger = pino({ level: 'info' }, { write: (line: string) => { lines.push(line) } })
    const edge = await startEdge(['--cloud-url', cloud.bridgeUrl, '--edge-id', 'edge-a', '--cloud-token', 'secret-a'], logger)
    const device = await mqttClient(edge.mqttPort)
    await device.publishAsync('devices/d1/telemetry', 'kept', { qos: 1 })
    device.end(true)
    await waitFor('a connect refused by TLS (logged)', () => lines.some((l) => l.includes('bridge connect failed') && /certificate/i.test(l)), 15_000)
    assert.notEqual(edge.bridge.status().state, 'ready')
    assert.equal((await storeContents(cloud)).length, 0)
    assert.ok(edge.bridge.status().lagMessages >= 1, 'the message waits at the edge')
  })
})

test('an unreadable --cloud-ca is a config error naming the field (exit 2)', async () => {
  const dir = await tempDir('bridge-wss-badca')
  try {
    const r = await runEdgeCli(['--data-dir', dir.path, '--mqtt-host', '127.0.0.1', '--mqtt-port', '0', '--ws-port', '-1', '--http-port', '-1',
      '--cloud-url', 'wss://127.0.0.1:1/bridge', '--cloud-ca', join(dir.path, 'missing.pem')])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /bridge\.caFile/)
  } finally {
    await dir.remove()
  }
})
