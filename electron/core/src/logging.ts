import { redactedLogOptions } from '@hangar/shared';
import { pino, type DestinationStream, type Logger } from 'pino';

/**
 * The core's one logger (the CLI, web mode and the Electron window alike): JSON lines on stderr,
 * level from $HANGAR_LOG_LEVEL (warn by default, so commands stay quiet; debug adds every UI
 * request), secrets redacted by the shared paths.
 */
export function createCoreLogger(
  level = process.env['HANGAR_LOG_LEVEL'] ?? 'warn',
  destination: DestinationStream = pino.destination(2),
): Logger {
  return pino(redactedLogOptions('hangar', level), destination);
}
