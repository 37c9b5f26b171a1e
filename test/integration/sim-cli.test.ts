// `tributary sim` as a real process: bad input ends with a clear message and the right exit
// code; a good run prints one JSON report; --expect-no-loss turns loss into a failing exit.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { loadConfig } from '../../src/config/index.js'
import { simSchema } from '../../src/config/sim.js'
import { loadScenario } from '../../firmware-sim/scenario.js'
import { freePort, tempDir } from '../helpers/net.js'
import { mosquittoPath, startMosquitto, type Mosquitto } from '../helpers/mosquitto.js'

const root = new URL('../../', import.meta.url).pathname
const cli = join(root, 'dist/cli.js')

async function sim (args: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> {
  if (!existsSync(cli)) throw new Error('dist/cli.js missing: run `npx tsup` (npm test does it in pretest)')
  return await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, 'sim', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''; let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const timer = setTimeout(() => { child.kill('SIGKILL') }, 60_000)
    child.on('error', reject)
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
  })
}

let dir: Awaited<ReturnType<typeof tempDir>>
let mosq: Mosquitto | undefined
before(async () => {
  dir = await tempDir('sim-cli')
  const bin = mosquittoPath()
  if (bin !== undefined) mosq = await startMosquitto(bin)
  else if (process.env.CI === 'true') throw new Error('mosquitto not found (CI=true: required)')
})
after(async () => { await mosq?.stop(); await dir.remove() })

test('unknown flag: exit 2, the flag is named', async () => {
  const r = await sim(['--devices', '3', '--bogus', '1'])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /unknown flag --bogus/)
})

test('bad flag value: exit 2, the field is named', async () => {
  const r = await sim(['--qos', '2'])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /devices\.qos/)
})

test('malformed fault spec: exit 2, the fault is named', async () => {
  const r = await sim(['--fault', 'at=1s cut=never'])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /fault\[0\]\.cut/)
})

test('scenario with a bad field: exit 2, the field is named', async () => {
  const file = join(dir.path, 'bad.yaml')
  await writeFile(file, 'name: bad\ngroups:\n  - name: ok\n    count: 2\n  - name: broken\n    count: 2\n    qos: 3\n')
  const r = await sim(['--scenario', file])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /groups\[1\]\.qos/)
  assert.match(r.stderr, /TRIB_ERR_SIM_SCENARIO/)
})

test('scenario that is not YAML, or has an unknown field: exit 2', async () => {
  const file = join(dir.path, 'garbage.yaml')
  await writeFile(file, 'groups: [ {count: 1\n')
  const r1 = await sim(['--scenario', file])
  assert.equal(r1.code, 2)
  assert.match(r1.stderr, /not valid YAML/)
  await writeFile(file, 'groups:\n  - count: 1\n    speed: 9\n')
  const r2 = await sim(['--scenario', file])
  assert.equal(r2.code, 2)
  assert.match(r2.stderr, /groups\[0\]\.speed/)
})

test('unreachable broker: exit 1 with a clear message', async () => {
  const port = await freePort()
  const r = await sim(['--broker', `mqtt://127.0.0.1:${port}`, '--devices', '2', '--duration', '1s'])
  assert.equal(r.code, 1)
  assert.match(r.stderr, /cannot reach mqtt:\/\/127\.0\.0\.1:\d+.*ECONNREFUSED.*TRIB_ERR_SIM_CONNECT/)
})

test('a run against mosquitto prints one JSON report and exits 0 with --expect-no-loss', async (t) => {
  if (mosq === undefined) { t.skip('mosquitto not installed'); return }
  const r = await sim(['--broker', mosq.url, '--devices', '20', '--rate', '10', '--duration', '1s', '--qos', '1', '--report', 'json', '--expect-no-loss', '--status-interval', '200ms'])
  assert.equal(r.code, 0, r.stderr)
  // Not a terminal: progress as plain lines on stderr; stdout holds only the report.
  assert.match(r.stderr, /^\[\d+\.\ds\] online \d+\/20 {2}published \d+/m)
  const report = JSON.parse(r.stdout)
  assert.equal(report.devices, 20)
  assert.ok(report.sent > 0)
  assert.equal(report.lost, 0)
  assert.equal(report.received, report.sent)
  assert.equal(typeof report.latencyMs.p999, 'number')
})

test('--expect-no-loss: loss gives exit 1 and names the error', async (t) => {
  if (mosq === undefined) { t.skip('mosquitto not installed'); return }
  const r = await sim(['--broker', mosq.url, '--devices', '3', '--rate', '10', '--duration', '500ms', '--check-filter', 'nowhere/+', '--drain-timeout', '300ms', '--expect-no-loss'])
  assert.equal(r.code, 1)
  assert.match(r.stdout, /LOSS: \d+ messages lost/)
  assert.match(r.stderr, /TRIB_ERR_SIM_LOSS/)
})

test('a scenario file runs through the CLI (groups, bursts, persistent sessions)', async (t) => {
  if (mosq === undefined) { t.skip('mosquitto not installed'); return }
  const file = join(dir.path, 'small.yaml')
  await writeFile(file, 'name: small\nduration: 1500ms\ngroups:\n  - name: a\n    count: 5\n    rate: 5\n    session: persistent\n  - name: b\n    count: 3\n    rate: 2\n    payload: binary\n    payloadBytes: 48\n    burstEvery: 500ms\n    burstSize: 5\n')
  const r = await sim(['--broker', mosq.url, '--scenario', file, '--report', 'json', '--expect-no-loss'])
  assert.equal(r.code, 0, r.stderr)
  const report = JSON.parse(r.stdout)
  assert.equal(report.scenario, 'small')
  assert.equal(report.devices, 8)
  assert.ok(report.sent >= 3 * 5 * 2, `bursts sent (${report.sent})`)
  assert.equal(report.lost, 0)
})

test('every shipped scenario is valid', () => {
  const dirPath = join(root, 'firmware-sim/scenarios')
  const files = readdirSync(dirPath).filter((f) => f.endsWith('.yaml'))
  assert.ok(files.length >= 3)
  const cfg = loadConfig(simSchema, { argv: [] })
  for (const f of files) {
    const s = loadScenario(join(dirPath, f), cfg)
    assert.ok(s.groups.length > 0, f)
  }
})
