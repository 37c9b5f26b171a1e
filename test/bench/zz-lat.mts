import { tributaryLatency } from './bridge.bench.js'
const a = await tributaryLatency('none'); console.log('none', a.p50, a.p99, a.max)
const b = await tributaryLatency('interval'); console.log('interval', b.p50, b.p99, b.max)
