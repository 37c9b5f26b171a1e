// Composition root of `tributary sim`: reads flags/env/scenario, picks the mode (devices, load,
// idle), prints progress and the report, maps outcomes to exit codes:
//   0 ok, 1 loss with --expect-no-loss or broker unreachable, 2 usage or config errors.
import { describeFlags, loadConfig } from '../src/config/index.js'
import { simSchema, type SimConfig } from '../src/config/sim.js'
import { isTributaryError } from '../src/errors/index.js'
import { createRootLogger } from '../src/log/index.js'
import { parseFault } from './fault/schedule.js'
import { runLoad, formatLoadReport } from './load/run.js'
import { runIdle, formatIdleReport } from './load/idle.js'
import { formatReport } from './report.js'
import { runSim, type SimStatus } from './run.js'
import { loadScenario, specFromFlags } from './scenario.js'

const USAGE = `usage: tributary sim [--broker URL] [--devices N --rate R --duration D --qos 0|1] [--scenario FILE]
                     [--fault 'at=10s cut=5s'] [--report json] [--expect-no-loss]
       tributary sim --max-rate | --load-rate N [--connections N --subscribers N --qos 0|1 --window W --warmup D]
       tributary sim --idle-connections N [--duration D]

Device mode simulates a fleet and checks every message at a subscriber (received, lost,
duplicated, reordered, latency). Load mode measures a broker; idle mode holds connections.
Exit codes: 0 ok, 1 loss (with --expect-no-loss) or broker unreachable, 2 bad usage or config.`

function usageError (code: string): boolean {
  return code === 'TRIB_ERR_CONFIG_INVALID' || code === 'TRIB_ERR_CONFIG_FILE' || code === 'TRIB_ERR_CLI_USAGE' || code === 'TRIB_ERR_SIM_SCENARIO'
}

export async function main (argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(`${USAGE}\n\nflags:\n${describeFlags(simSchema)}`)
    return 0
  }
  try {
    // An explicit --duration overrides a scenario's own duration (handy for short trial runs).
    const durationGiven = argv.some((a) => a === '--duration' || a.startsWith('--duration='))
    return await run(loadConfig(simSchema, { argv, env }), durationGiven)
  } catch (err) {
    if (isTributaryError(err)) {
      console.error(`tributary sim: ${err.message} [${err.code}]`)
      return usageError(err.code) ? 2 : 1
    }
    throw err
  }
}

function statusPrinter (): (s: SimStatus) => void {
  // A single rewritten line on a terminal; plain lines otherwise (logs, CI). Always on stderr
  // so stdout holds only the report (one JSON object with --report json).
  const tty = process.stdout.isTTY === true && process.stderr.isTTY === true
  return (s) => {
    const line = `[${(s.elapsedMs / 1000).toFixed(1)}s] online ${s.online}/${s.devices}  published ${s.published}  acked ${s.acked}  received ${s.received}  reconnects ${s.reconnects}`
    if (tty) process.stderr.write(`\r\x1b[2K${line}`)
    else process.stderr.write(line + '\n')
  }
}

async function run (cfg: SimConfig, durationGiven: boolean): Promise<number> {
  const log = createRootLogger({ level: cfg.logLevel, name: 'tributary-sim', destination: 2 })
  const json = cfg.report === 'json'
  const abort = new AbortController()
  const onSigint = (): void => { abort.abort() }
  process.once('SIGINT', onSigint)
  process.once('SIGTERM', onSigint)
  try {
    if (cfg.load.idleConnections > 0) {
      const r = await runIdle({ broker: cfg.broker, connections: cfg.load.idleConnections, rampPerSec: cfg.devices.rampPerSec, holdMs: cfg.durationMs, idPrefix: cfg.devices.idPrefix, signal: abort.signal }, log)
      console.log(json ? JSON.stringify(r) : formatIdleReport(r))
      return r.connected === cfg.load.idleConnections ? 0 : 1
    }
    if (cfg.load.maxRate || cfg.load.ratePerSec > 0) {
      const r = await runLoad({
        broker: cfg.broker,
        qos: cfg.devices.qos as 0 | 1,
        ratePerSec: cfg.load.maxRate ? 0 : cfg.load.ratePerSec,
        connections: cfg.load.connections,
        subscribers: cfg.load.subscribers,
        window: cfg.load.window,
        payloadBytes: cfg.devices.payloadBytes,
        durationMs: cfg.durationMs,
        warmupMs: cfg.load.warmupMs,
        drainTimeoutMs: cfg.check.drainTimeoutMs,
        idPrefix: cfg.devices.idPrefix,
        signal: abort.signal
      }, log)
      console.log(json ? JSON.stringify(r) : formatLoadReport(r))
      return 0
    }
    const scenario = cfg.scenario === undefined ? null : loadScenario(cfg.scenario, cfg)
    const flagFaults = cfg.faults.map((f, i) => parseFault(f, `fault[${i}]`))
    const report = await runSim({
      broker: cfg.broker,
      groups: scenario?.groups ?? [{ spec: specFromFlags(cfg), count: cfg.devices.count }],
      durationMs: scenario === null || durationGiven ? cfg.durationMs : scenario.durationMs,
      idPrefix: cfg.devices.idPrefix,
      rampPerSec: cfg.devices.rampPerSec,
      seed: cfg.seed,
      faults: [...(scenario?.faults ?? []), ...flagFaults],
      commandRatePerSec: scenario?.commandRatePerSec ?? cfg.devices.commandRatePerSec,
      checkUrl: cfg.check.url,
      checkFilter: cfg.check.filter,
      checkPrefix: cfg.check.prefix,
      drainTimeoutMs: cfg.check.drainTimeoutMs,
      statusIntervalMs: cfg.statusIntervalMs,
      scenarioName: scenario?.name,
      onStatus: statusPrinter(),
      signal: abort.signal
    }, log)
    if (process.stderr.isTTY === true && process.stdout.isTTY === true) process.stderr.write('\n')
    console.log(json ? JSON.stringify(report) : formatReport(report))
    if (cfg.expectNoLoss && report.lost > 0) {
      console.error(`tributary sim: ${report.lost} messages lost (--expect-no-loss) [TRIB_ERR_SIM_LOSS]`)
      return 1
    }
    return 0
  } finally {
    process.off('SIGINT', onSigint)
    process.off('SIGTERM', onSigint)
    log.flush()
  }
}
