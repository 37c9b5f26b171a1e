// The Raspberry Pi bundle, for real: deploy/raspberry-pi/build-bundle.sh arm64 builds it (with
// Node's official arm64 binary from the npm registry), and the edge broker runs from it under
// qemu's user-mode emulation: arm64 Node, classic-level's arm64 prebuild, the commitlog on disk,
// MQTT over TCP, a clean SIGTERM. Needs Debian's qemu-user-static and the arm64 C/C++ runtime
// (libc6-arm64-cross, libstdc++6-arm64-cross), which .ci/run installs.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import { connectAsync } from 'mqtt'
import { startEdge } from '../helpers/edge-process.js'
import { tempDir } from '../helpers/net.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const QEMU = '/usr/bin/qemu-aarch64-static'
const ARM64_SYSROOT = '/usr/aarch64-linux-gnu'
const missing = [QEMU, join(ARM64_SYSROOT, 'lib/ld-linux-aarch64.so.1'), join(ARM64_SYSROOT, 'lib/libstdc++.so.6')].filter((p) => !existsSync(p))

test('the arm64 bundle runs the edge broker under emulation', { skip: missing.length > 0 && process.env.CI !== 'true' ? `missing ${missing.join(', ')}` : false }, async () => {
  assert.deepEqual(missing, [], 'qemu-user-static and the arm64 runtime are needed (see .ci/run)')
  const work = await tempDir('arm64')
  try {
    const bundle = join(work.path, 'bundle')
    await promisify(execFile)('bash', ['deploy/raspberry-pi/build-bundle.sh', 'arm64', bundle], { cwd: root, maxBuffer: 16 * 1024 * 1024 })
    const { stdout: fileInfo } = await promisify(execFile)('file', ['-b', join(bundle, 'node/node')]).catch(() => ({ stdout: 'aarch64 (file(1) not installed)' }))
    assert.match(fileInfo, /aarch64/)
    assert.ok(readdirSync(join(bundle, 'node_modules/classic-level/prebuilds')).includes('linux-arm64'))

    const dataDir = join(work.path, 'data')
    const edge = await startEdge({
      dataDir,
      args: ['--ws-port', '-1', '--http-port', '-1'],
      timeoutMs: 60_000,
      command: { file: QEMU, args: [join(bundle, 'node/node'), join(bundle, 'dist/cli.js')], env: { QEMU_LD_PREFIX: ARM64_SYSROOT } }
    })
    try {
      const sub = await connectAsync(edge.url, { clientId: 'arm-sub', reconnectPeriod: 0 })
      const got: string[] = []
      sub.on('message', (_topic, payload) => got.push(payload.toString()))
      await sub.subscribeAsync('pi/#', { qos: 1 })
      const pub = await connectAsync(edge.url, { clientId: 'arm-pub', reconnectPeriod: 0 })
      for (let i = 0; i < 20; i++) await pub.publishAsync('pi/telemetry', `m${i}`, { qos: 1 })
      const deadline = Date.now() + 20_000
      while (got.length < 20 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
      assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => `m${i}`))
      await pub.endAsync()
      await sub.endAsync()
      assert.equal(await edge.stop(), 0)
    } finally {
      await edge.kill().catch(() => {})
    }
    assert.ok(readdirSync(join(dataDir, 'log')).some((f) => f.endsWith('.log')), 'commitlog segment written')
  } finally {
    await work.remove()
  }
})
