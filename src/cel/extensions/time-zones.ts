/**
 * Timestamp accessors with a time zone argument (`t.getHours('Europe/Berlin')`), as CEL defines
 * them: the zone is an IANA name or a fixed offset "+HH:MM", "-HH:MM" or "HH:MM".
 *
 * cel-js 8.0.0 handles IANA names but throws a raw JavaScript RangeError (not a CEL error) for
 * fixed offsets and unknown zones, so an egress rule like `request.time.getHours('+01:00') < 18`
 * crashed. These replacements accept both forms and report an unknown zone as a CEL error.
 * Results: getFullYear, getMonth (0-11), getDate (1-31), getDayOfMonth (0-30),
 * getDayOfWeek (0 = Sunday), getDayOfYear (0-365), getHours, getMinutes, getSeconds,
 * getMilliseconds.
 */
import { EvaluationError, type Environment } from '@marcbachmann/cel-js';
import { replaceReceiverMethod, type ReceiverOverload } from './receiver-override.js';

interface WallClock {
  readonly year: number;
  /** 0-11 */
  readonly month: number;
  /** 1-31 */
  readonly day: number;
  /** 0 = Sunday */
  readonly weekday: number;
  readonly hours: number;
  readonly minutes: number;
  readonly seconds: number;
  readonly milliseconds: number;
}

const OFFSET = /^([+-]?)([0-9]{2}):([0-9]{2})$/;
const formatters = new Map<string, Intl.DateTimeFormat>();

function zoneFormatter(zone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(zone);
  if (!formatter) {
    try {
      formatter = new Intl.DateTimeFormat('en-US', {
        timeZone: zone,
        hourCycle: 'h23',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric',
      });
    } catch (error) {
      if (error instanceof RangeError) throw new EvaluationError('invalid time zone');
      throw error;
    }
    formatters.set(zone, formatter);
  }
  return formatter;
}

function utcWallClock(date: Date): WallClock {
  return {
    year: date.getUTCFullYear(),
    month: date.getUTCMonth(),
    day: date.getUTCDate(),
    weekday: date.getUTCDay(),
    hours: date.getUTCHours(),
    minutes: date.getUTCMinutes(),
    seconds: date.getUTCSeconds(),
    milliseconds: date.getUTCMilliseconds(),
  };
}

/** The calendar fields of `date` as seen in `zone`. */
export function wallClock(date: Date, zone: string): WallClock {
  const offset = OFFSET.exec(zone);
  if (offset) {
    const [, sign, hours = '0', minutes = '0'] = offset;
    const offsetMinutes = (Number(hours) * 60 + Number(minutes)) * (sign === '-' ? -1 : 1);
    return utcWallClock(new Date(date.getTime() + offsetMinutes * 60_000));
  }
  const parts = Object.fromEntries(zoneFormatter(zone).formatToParts(date).map((part) => [part.type, part.value]));
  const year = Number(parts.year);
  const month = Number(parts.month) - 1;
  const day = Number(parts.day);
  return {
    year,
    month,
    day,
    weekday: new Date(Date.UTC(year, month, day)).getUTCDay(),
    hours: Number(parts.hour),
    minutes: Number(parts.minute),
    seconds: Number(parts.second),
    milliseconds: date.getUTCMilliseconds(),
  };
}

function dayOfYear(clock: WallClock): number {
  return (Date.UTC(clock.year, clock.month, clock.day) - Date.UTC(clock.year, 0, 1)) / 86_400_000;
}

const ACCESSORS: Record<string, (clock: WallClock) => number> = {
  getFullYear: (clock) => clock.year,
  getMonth: (clock) => clock.month,
  getDate: (clock) => clock.day,
  getDayOfMonth: (clock) => clock.day - 1,
  getDayOfWeek: (clock) => clock.weekday,
  getDayOfYear: dayOfYear,
  getHours: (clock) => clock.hours,
  getMinutes: (clock) => clock.minutes,
  getSeconds: (clock) => clock.seconds,
  getMilliseconds: (clock) => clock.milliseconds,
};

export function registerTimeZones(env: Environment): void {
  for (const [name, read] of Object.entries(ACCESSORS)) {
    const overload: ReceiverOverload = {
      receiver: 'google.protobuf.Timestamp',
      args: ['string'],
      returns: 'int',
      handler: (date: Date, zone: string) => BigInt(read(wallClock(date, zone))),
    };
    replaceReceiverMethod(env, name, [overload]);
  }
}
