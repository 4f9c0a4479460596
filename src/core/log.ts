import { createRequire } from 'node:module'
import { pino, type Logger, type LoggerOptions } from 'pino'

export type { Logger }

/**
 * JSON lines on stdout (what log shippers expect); pretty-printed when a human is watching a
 * terminal and pino-pretty is installed (it is a dev dependency, absent from production images).
 */
export function createLogger(level: string, opts: { pretty?: boolean } = {}): Logger {
  const options: LoggerOptions = {
    level,
    base: { svc: 'relay' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  }
  const pretty = opts.pretty ?? Boolean(process.stdout.isTTY)
  if (pretty && canPrettyPrint()) {
    return pino({
      ...options,
      transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,svc' } },
    })
  }
  return pino(options)
}

function canPrettyPrint(): boolean {
  try {
    createRequire(import.meta.url).resolve('pino-pretty')
    return true
  } catch {
    return false
  }
}
