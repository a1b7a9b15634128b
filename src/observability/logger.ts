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
    destination ?? new TurnBatchedStream(pino.destination({ dest: 1, sync: false })),
  );
}

/** What TurnBatchedStream writes to: pino's SonicBoom destination (stdout) in the server. */
export interface LineSink {
  write(data: string): unknown;
  flush(cb?: (err?: Error) => void): void;
  flushSync(): void;
}

/** Lines above this many characters are written at once rather than at the end of the turn. */
const MAX_BATCH_CHARS = 64 * 1024;

/** A line whose text is built only when the batch is written (see TurnBatchedStream.writeDeferred). */
export interface DeferredLine {
  render(): string;
}

/** What a deferred line counts toward MAX_BATCH_CHARS before it is rendered (a decision line is ~400–600). */
const DEFERRED_LINE_CHARS = 512;

/**
 * stdout for the server: the lines written during one event-loop turn go out as one write at its end. Under
 * load one turn answers many Checks (one decision line each), and a write per line was the largest single
 * cost of a warm Check in the CPU profile (an fs.write and a string conversion each); a quiet server still
 * writes every line within the turn that produced it. Flushes (pino's flush, process exit) empty the batch first.
 *
 * Decision lines are handed over deferred and rendered together when the batch is written: formatted in one
 * loop, away from the Checks' own work, a line cost about half as much CPU under load (docs/performance.md).
 * Lines keep the order they were written in.
 */
export class TurnBatchedStream {
  private items: Array<string | DeferredLine> = [];
  private chars = 0;
  private scheduled = false;

  constructor(private readonly target: LineSink) {
    process.on('exit', () => {
      if (this.items.length === 0) return;
      try {
        this.target.write(this.takePending());
        this.target.flushSync();
      } catch {
        // stdout already closed or destroyed: nothing left to write to, and exit must not throw.
      }
    });
  }

  write(line: string): boolean {
    this.items.push(line);
    this.added(line.length);
    return true;
  }

  /** Queues a line rendered when the batch is written (at the end of the turn, or a flush). */
  writeDeferred(line: DeferredLine): void {
    this.items.push(line);
    this.added(DEFERRED_LINE_CHARS);
  }

  flush(cb?: (err?: Error) => void): void {
    this.writePending();
    this.target.flush(cb);
  }

  flushSync(): void {
    this.writePending();
    this.target.flushSync();
  }

  private added(chars: number): void {
    this.chars += chars;
    if (this.chars >= MAX_BATCH_CHARS) this.writePending();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.writePending);
    }
  }

  private readonly writePending = (): void => {
    this.scheduled = false;
    if (this.items.length > 0) this.target.write(this.takePending());
  };

  private takePending(): string {
    const items = this.items;
    this.items = [];
    this.chars = 0;
    let out = '';
    for (const item of items) out += typeof item === 'string' ? item : item.render();
    return out;
  }
}

export const silentLogger: Logger = pino({ level: 'silent' });
