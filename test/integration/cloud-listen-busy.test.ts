// A cloud node whose MQTT, bridge or HTTP port is taken exits at once with one coded line
// (TRIB_ERR_NET_LISTEN) and exit code 1: no stack trace, and no process left hanging with
// half its components open. Real `tributary cloud` processes (dist/cli.js, built by npx tsup).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createServer, type AddressInfo } from 'node:net'
import { tempDir } from '../helpers/net.js'
import { CLI } from '../helpers/edge-process.js'

async function runCloud (args: string[]): Promise<{ code: number | null, signal: NodeJS.Signals | null, stderr: string }> {
  const env = { ...process.env }
  delete env.NODE_TEST_CONTEXT
  const child = spawn(process.execPath, [CLI, 'cloud', ...args], { stdio: ['ignore', 'ignore', 'pipe'], env })
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
  // A hang is the failure this test exists for: bounded, then killed by PID.
  const timer = setTimeout(() => { child.kill('SIGKILL') }, 20_000)
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('exit', (c, s) => { resolve([c, s]) }))
  clearTimeout(timer)
  return { code, signal, stderr }
}

for (const which of ['mqtt', 'bridge', 'http'] as const) {
  test(`a cloud node whose ${which} port is in use exits with TRIB_ERR_NET_LISTEN, one line, code 1`, { timeout: 30_000 }, async () => {
    const busy = createServer()
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve))
    const port = (busy.address() as AddressInfo).port
    const dir = await tempDir('cloud-busy')
    try {
      const ports = { mqtt: '0', bridge: '0', http: '0', [which]: String(port) }
      const res = await runCloud(['--data-dir', dir.path, '--mqtt-host', '127.0.0.1', '--bridge-host', '127.0.0.1', '--http-host', '127.0.0.1',
        '--mqtt-port', ports.mqtt, '--bridge-port', ports.bridge, '--http-port', ports.http, '--log-level', 'warn'])
      assert.equal(res.signal, null, `the process hung and was killed:\n${res.stderr}`)
      assert.equal(res.code, 1, res.stderr)
      const lines = res.stderr.trim().split('\n')
      assert.equal(lines.length, 1, `one line, no stack:\n${res.stderr}`)
      assert.match(lines[0], new RegExp(`^tributary: fatal: .*listener cannot bind 127\\.0\\.0\\.1:${port}: port in use \\(EADDRINUSE\\) \\[TRIB_ERR_NET_LISTEN\\]$`, 'i'))
    } finally {
      busy.close()
      await dir.remove()
    }
  })
}
