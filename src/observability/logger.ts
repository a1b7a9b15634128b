// pino logger with redaction built in: credentials never reach a log line, whatever the level.
import pino, { type Logger, type LevelWithSilent } from 'pino';

// pino paths match exact keys one level deep at most (`*.x`); values of headers and credentials are never
// logged on purpose anywhere in the code — these paths are the second line of defence.
const SECRET_KEYS = ['authorization', 'token', 'client_token', 'jwt', 'apiKey', 'api_key', 'secret', 'password', 'credential', 'vaultToken', 'cookie'];
const SECRET_HEADERS = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key', 'api-key', 'x-vault-token'];

export const REDACT_PATHS = [
  ...SECRET_KEYS.flatMap((k) => [k, `*.${k}`]),
  ...SECRET_HEADERS.flatMap((h) => [`headers["${h}"]`, `*.headers["${h}"]`]),
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
