import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import { loadConfig } from '../../src/config/index.js'
import { edgeSchema } from '../../src/config/edge.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const run = promisify(execFile)

// The shipped Raspberry Pi config must load with the real schema, so it cannot rot as settings change.
test('deploy/raspberry-pi/edge.yaml loads through the edge schema', () => {
  const config = loadConfig(edgeSchema, { argv: ['--config', `${root}deploy/raspberry-pi/edge.yaml`] })
  assert.equal(config.dataDir, '/var/lib/tributary')
  assert.equal(config.commitlog.flushPolicy, 'interval')
  assert.equal(config.commitlog.retentionBytes, 8 * 1024 ** 3)
})

test('tributary edge --check-config accepts the shipped config and refuses a broken one', async () => {
  const ok = await run(process.execPath, ['dist/cli.js', 'edge', '--config', 'deploy/raspberry-pi/edge.yaml', '--check-config'], { cwd: root })
  assert.match(ok.stdout, /configuration is valid/)
  await assert.rejects(
    run(process.execPath, ['dist/cli.js', 'edge', '--config', 'deploy/raspberry-pi/edge.yaml', '--mqtt-port', 'x', '--check-config'], { cwd: root }),
    (err: { code?: number, stderr?: string }) => err.code === 2 && /mqtt\.port/.test(err.stderr ?? '')
  )
})
