// quick: node --import tsx /tmp/one.ts <broker> <measure>
import { startBroker, simReport } from './broker-procs.js'
const [name, what] = process.argv.slice(2) as any
const LOAD = ['--payload-bytes', '64', '--drain-timeout', '20s']
const args: Record<string, string[]> = {
  q0: ['--max-rate', '--qos', '0', '--connections', '4', '--subscribers', '1', '--duration', '3s'],
  q1: ['--warmup', '1s', '--max-rate', '--qos', '1', '--window', '64', '--connections', '4', '--subscribers', '1', '--duration', '3s'],
  lat: ['--warmup', '1s', '--load-rate', '5000', '--qos', '1', '--window', '64', '--connections', '4', '--subscribers', '1', '--duration', '5s'],
  fan: ['--load-rate', '2000', '--qos', '0', '--connections', '1', '--subscribers', '100', '--duration', '2s'],
}
const b = await startBroker(name)
if (what === 'idle') {
  const { rssBytes } = await import('./broker-procs.js')
  if (process.env.WARM === '1') await simReport(['--broker', b.url, '--idle-connections', process.env.WARMN ?? '100', '--ramp', '5000', '--duration', '0.5s'])
  await new Promise((r) => setTimeout(r, 500))
  const before = rssBytes(b.pid); let peak = before
  const n = Number(process.argv[4] ?? 10000)
  const r: any = await simReport(['--broker', b.url, '--idle-connections', String(n), '--ramp', '5000', '--duration', '3s'], () => { peak = Math.max(peak, rssBytes(b.pid)) })
  console.log(name, 'idle', r.connected, ((peak - before) / r.connected / 1024).toFixed(2), 'KiB/conn', 'before MiB', (before / 1048576).toFixed(1), 'rate', r.connectsPerSec)
  await b.stop(); process.exit(0)
}
try {
  const r: any = await simReport([...('--broker ' + b.url).split(' '), ...args[what], ...LOAD])
  console.log(name, what, JSON.stringify({ pub: r.publishedPerSec, acked: r.ackedPerSec, del: r.deliveriesPerSec, undel: r.undelivered, lat: r.latencyMs, wf: r.windowFullTicks, cpu: r.generatorCpuCores }))
} finally { await b.stop() }
