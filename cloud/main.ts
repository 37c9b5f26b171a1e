// Composition root of `tributary cloud`: flags/env/file -> config, logger, signals.
import { describeFlags, loadConfig } from '../src/config/index.js'
import { cloudSchema } from '../src/config/cloud.js'
import { createRootLogger } from '../src/log/index.js'
import { startCloudNode } from './node.js'

export async function main (argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  if (argv.includes('--help')) {
    console.log(`usage: tributary cloud [--config FILE] [flags]\n\n${describeFlags(cloudSchema)}`)
    return 0
  }
  const config = loadConfig(cloudSchema, { argv, env })
  const logger = createRootLogger({ level: config.logLevel, name: 'tributary-cloud' })
  const node = await startCloudNode({ config, logger })
  // Machine-readable line for scripts and tests that start the node on port 0.
  console.log(JSON.stringify({ event: 'cloud-ready', mqttPort: node.mqttPort, bridgePort: node.bridgePort, httpPort: node.httpPort, bridgeUrl: node.bridgeUrl }))
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      logger.info({ signal }, 'signal received')
      process.off('SIGINT', onInt)
      process.off('SIGTERM', onTerm)
      node.close().then(resolve, (err: Error) => { logger.error({ err }, 'shutdown failed'); resolve() })
    }
    const onInt = (): void => { stop('SIGINT') }
    const onTerm = (): void => { stop('SIGTERM') }
    process.on('SIGINT', onInt)
    process.on('SIGTERM', onTerm)
  })
  logger.flush()
  return 0
}
