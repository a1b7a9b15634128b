// pino logger with redaction built in: credentials never reach a log line, whatever the level.
import pino, { type Logger, type LevelWithSilent } from 'pino';

export const REDACT_PATHS = [
  'authorization',
  '*.authorization',
  'headers.authorization',
  'headers.cookie',
  'headers["x-api-key"]',
  'headers["api-key"]',
  'headers["proxy-authorization"]',
  'token',
  '*.token',
  'client_token',
  '*.client_token',
  'jwt',
  '*.jwt',
  'apiKey',
  '*.apiKey',
  'secret',
  '*.secret',
];

export function createLogger(level: LevelWithSilent = 'info', destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'egress-authz' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

export const silentLogger: Logger = pino({ level: 'silent' });
