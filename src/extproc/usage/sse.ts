// A streaming Server-Sent Events reader (the text/event-stream format of the WHATWG HTML standard) that
// keeps no lines: each `data:` line is fed straight into a JsonFieldScanner as it arrives, so an event of
// any size costs a few bytes plus the captured usage values. Lines end in LF, CR or CRLF; multi-line data
// is joined with "\n" (JSON whitespace); `event:` names are kept up to 64 bytes; comments, `id:`, `retry:`
// and unknown fields are skipped. An empty line dispatches the event.
import { FieldPaths, JsonFieldScanner, type CapturedFields } from './json-scanner.js';

export interface SseEvent {
  /** The `event:` field, or "message" when absent (the SSE default). */
  readonly name: string;
  /** The wanted JSON paths found in the event's data. */
  readonly fields: CapturedFields;
}

const MAX_FIELD_NAME_BYTES = 16;
const MAX_EVENT_NAME_BYTES = 64;
const LF = 0x0a;
const CR = 0x0d;
const COLON = 0x3a;
const SPACE = 0x20;

type LineMode = 'field' | 'afterColon' | 'data' | 'event' | 'ignore';

export class SseUsageReader {
  private mode: LineMode = 'field';
  private fieldBytes: number[] = [];
  private fieldTooLong = false;
  private valueField: 'data' | 'event' | 'ignore' = 'ignore';
  private eventNameBytes: number[] = [];
  private scanner: JsonFieldScanner | undefined;
  private dataLines = 0;
  private lastWasCR = false;

  private readonly paths: FieldPaths;

  constructor(
    paths: readonly string[],
    private readonly onEvent: (event: SseEvent) => void,
  ) {
    this.paths = new FieldPaths(paths);
  }


  write(chunk: Uint8Array): void {
    const length = chunk.length;
    let i = 0;
    while (i < length) {
      const byte = chunk[i] as number;
      if (this.lastWasCR) {
        this.lastWasCR = false;
        if (byte === LF) {
          i++;
          continue; // the LF of a CRLF: the line already ended at the CR
        }
      }
      if (byte === CR || byte === LF) {
        this.endLine();
        this.lastWasCR = byte === CR;
        i++;
        continue;
      }
      switch (this.mode) {
        case 'field':
          if (byte === COLON) {
            this.valueField = this.fieldBytes.length === 0 ? 'ignore' : fieldKind(this.fieldBytes, this.fieldTooLong);
            this.mode = 'afterColon';
          } else if (this.fieldBytes.length < MAX_FIELD_NAME_BYTES) {
            this.fieldBytes.push(byte);
          } else {
            this.fieldTooLong = true;
          }
          i++;
          break;
        case 'afterColon':
          // One leading space after the colon is not part of the value.
          this.startValue();
          if (byte === SPACE) i++;
          break;
        case 'data': {
          let end = i;
          while (end < length && chunk[end] !== LF && chunk[end] !== CR) end++;
          this.scanner?.write(chunk.subarray(i, end));
          i = end;
          break;
        }
        case 'event':
          if (this.eventNameBytes.length < MAX_EVENT_NAME_BYTES) this.eventNameBytes.push(byte);
          i++;
          break;
        case 'ignore': {
          while (i < length && chunk[i] !== LF && chunk[i] !== CR) i++;
          break;
        }
      }
    }
  }

  /** End of the body: an event not closed by an empty line is dispatched too (its data may be complete). */
  end(): void {
    this.endLine();
    this.dispatch();
  }

  private startValue(): void {
    if (this.valueField === 'data') {
      this.scanner ??= new JsonFieldScanner(this.paths);
      // Lines of one event's data are joined by a newline, which JSON reads as whitespace.
      if (this.dataLines > 0) this.scanner.write(NEWLINE);
      this.dataLines++;
      this.mode = 'data';
    } else if (this.valueField === 'event') {
      this.eventNameBytes = [];
      this.mode = 'event';
    } else {
      this.mode = 'ignore';
    }
  }

  private endLine(): void {
    if (this.mode === 'field') {
      if (this.fieldBytes.length === 0 && !this.fieldTooLong) {
        this.dispatch();
      } else {
        // A line without a colon names a field with an empty value.
        this.valueField = fieldKind(this.fieldBytes, this.fieldTooLong);
        this.startValue();
      }
    } else if (this.mode === 'afterColon') {
      this.startValue();
    }
    this.mode = 'field';
    this.fieldBytes = [];
    this.fieldTooLong = false;
  }

  private dispatch(): void {
    const scanner = this.scanner;
    const nameBytes = this.eventNameBytes;
    this.scanner = undefined;
    this.dataLines = 0;
    this.eventNameBytes = [];
    if (!scanner) return; // an event without data is not dispatched
    const name = nameBytes.length > 0 ? Buffer.from(nameBytes).toString('utf8') : 'message';
    this.onEvent({ name, fields: scanner.end() });
  }
}

const NEWLINE = Buffer.from('\n');
const DATA = Buffer.from('data');
const EVENT = Buffer.from('event');

function fieldKind(bytes: readonly number[], tooLong: boolean): 'data' | 'event' | 'ignore' {
  if (tooLong) return 'ignore';
  if (sameBytes(bytes, DATA)) return 'data';
  if (sameBytes(bytes, EVENT)) return 'event';
  return 'ignore';
}

function sameBytes(bytes: readonly number[], word: Buffer): boolean {
  if (bytes.length !== word.length) return false;
  for (let i = 0; i < word.length; i++) if (bytes[i] !== word[i]) return false;
  return true;
}
