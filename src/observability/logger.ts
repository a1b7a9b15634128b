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
    destination ?? new BatchedLineStream(pino.destination({ dest: 1, sync: false })),
  );
}

/** What BatchedLineStream writes to: pino's SonicBoom destination (stdout) in the server. */
export interface LineSink {
  write(data: string): unknown;
  flush(cb?: (err?: Error) => void): void;
  flushSync(): void;
}

/** Rendered text is handed to the destination once it reaches this many characters... */
const WRITE_CHARS = 16 * 1024;
/** ...or this long after the first line waiting, whichever comes first. */
const WRITE_DELAY_MS = 20;

/** A line whose text is built only when its turn ends (see BatchedLineStream.writeDeferred). */
export interface DeferredLine {
  render(): string;
}

/**
 * stdout for the server: lines leave in writes of ~16 KiB, or at most 20 ms after they were logged. The
 * destination (pino's SonicBoom, asynchronous) writes through libuv's thread pool, and each of its writes
 * costs the process the hand-off to a thread and the wake-up back: a write per line was the largest single
 * cost of a warm Check in the CPU profile, and under load a turn holds only a few lines. Flushes (pino's
 * flush, process exit) write everything first.
 *
 * Decision lines are handed over deferred and rendered at the end of the turn that logged them, together:
 * formatted in one loop, away from the Checks' own work, a line costs about half as much CPU under load, and
 * the request it describes is released with the turn. Lines keep the order they were written in.
 */
export class BatchedLineStream {
  /** Lines of the current turn, rendered at its end. */
  private items: Array<string | DeferredLine> = [];
  private renderScheduled = false;
  /** Rendered text not yet handed to the destination. */
  private rendered = '';
  private writeTimer: NodeJS.Timeout | undefined;

  constructor(private readonly target: LineSink) {
    process.on('exit', () => {
      if (this.items.length === 0 && !this.rendered) return;
      try {
        this.writeAll();
        this.target.flushSync();
      } catch {
        // stdout already closed or destroyed: nothing left to write to, and exit must not throw.
      }
    });
  }

  write(line: string): boolean {
    this.add(line);
    return true;
  }

  /** Queues a line rendered at the end of the current turn. */
  writeDeferred(line: DeferredLine): void {
    this.add(line);
  }

  flush(cb?: (err?: Error) => void): void {
    this.writeAll();
    this.target.flush(cb);
  }

  flushSync(): void {
    this.writeAll();
    this.target.flushSync();
  }

  private add(item: string | DeferredLine): void {
    this.items.push(item);
    if (!this.renderScheduled) {
      this.renderScheduled = true;
      setImmediate(this.endOfTurn);
    }
  }

  private readonly endOfTurn = (): void => {
    this.renderScheduled = false;
    this.renderItems();
    if (this.rendered.length >= WRITE_CHARS) this.writeRendered();
    // A quiet server's lines leave within WRITE_DELAY_MS; the timer does not keep the process alive.
    else if (this.rendered && !this.writeTimer) this.writeTimer = setTimeout(this.writeRendered, WRITE_DELAY_MS).unref();
  };

  private renderItems(): void {
    const items = this.items;
    if (items.length === 0) return;
    this.items = [];
    let out = this.rendered;
    for (const item of items) out += typeof item === 'string' ? item : item.render();
    this.rendered = out;
  }

  private readonly writeRendered = (): void => {
    if (this.writeTimer) {
      clearTimeout(this.writeTimer);
      this.writeTimer = undefined;
    }
    if (!this.rendered) return;
    const out = this.rendered;
    this.rendered = '';
    this.target.write(out);
  };

  private writeAll(): void {
    this.renderItems();
    this.writeRendered();
  }
}

export const silentLogger: Logger = pino({ level: 'silent' });
