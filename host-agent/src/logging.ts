import { redactedLogOptions } from '@hangar/shared';
import { pino, type DestinationStream, type Logger } from 'pino';

/**
 * The agent's one logger: JSON lines on stderr, level from $HANGAR_LOG_LEVEL (info by default;
 * debug adds every request), secrets redacted by the shared paths. Components take children of it.
 */
export function createAgentLogger(
  level = process.env['HANGAR_LOG_LEVEL'] ?? 'info',
  destination: DestinationStream = pino.destination(2),
): Logger {
  return pino(redactedLogOptions('hangar-agent', level), destination);
}
