#!/usr/bin/env node
// The one binary: `tributary edge|cloud|sim|demo|bench`. A composition root: it is one of the few
// places that touch process (argv, env, exit codes). Subcommands load lazily so `tributary sim`
// does not pay for the broker's start-up and the reverse.
import { isTributaryError } from './errors/index.js'
import { quietMqttPacketDebug } from './mqtt/quiet-debug.js'

const USAGE = `usage: tributary <command> [flags]

commands:
  edge     run the edge MQTT broker (commitlog, bridge to the cloud)
  cloud    run a cloud node
  sim      run simulated devices against a broker
  demo     cloud + edge + simulated devices in one process (what npm start runs)

Run 'tributary <command> --help' for the flags of a command.`

type Main = (argv: readonly string[], env: NodeJS.ProcessEnv) => Promise<number | undefined>

const COMMANDS: Record<string, () => Promise<Main>> = {
  edge: async () => (await import('../edge/main.js')).main,
  sim: async () => (await import('../firmware-sim/main.js')).main,
  cloud: async () => (await import('../cloud/main.js')).main,
  demo: async () => (await import('../demo/main.js')).main
}

async function run (): Promise<number> {
  const [command, ...rest] = process.argv.slice(2)
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    console.log(USAGE)
    return command === undefined ? 2 : 0
  }
  const load = COMMANDS[command]
  if (load === undefined) {
    console.error(`tributary: unknown command "${command}"\n\n${USAGE}`)
    return 2
  }
  // Before any command module (and with it mqtt-packet) loads: see quiet-debug.ts.
  quietMqttPacketDebug()
  const main = await load()
  return (await main(rest, process.env)) ?? 0
}

run().then(
  (code) => { if (code !== 0) process.exitCode = code },
  (err: unknown) => {
    if (isTributaryError(err) && (err.code === 'TRIB_ERR_CONFIG_INVALID' || err.code === 'TRIB_ERR_CONFIG_FILE' || err.code === 'TRIB_ERR_CLI_USAGE')) {
      console.error(`tributary: ${err.message} [${err.code}]`)
      process.exitCode = 2
      return
    }
    console.error('tributary: fatal:', isTributaryError(err) ? `${err.message} [${err.code}]` : err)
    process.exitCode = 1
  }
)
