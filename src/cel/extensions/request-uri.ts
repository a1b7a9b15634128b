/**
 * The slice of Go's net/url that the Kubernetes CEL `url()` function depends on: it accepts a
 * string only if url.ParseRequestURI does (an absolute URI or an absolute path), then reads the
 * components from url.Parse (which also splits off a #fragment).
 *
 * Go strings are bytes, so the parser works on a "byte string": the UTF-8 bytes of the input,
 * one JavaScript char (0-255) per byte. Component getters turn bytes back into UTF-8 text.
 * Errors carry a reason only, never the input.
 */

export class UrlParseError extends Error {}

type Encoding = 'path' | 'host' | 'zone' | 'userPassword' | 'queryComponent' | 'fragment';

function toByteString(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

function fromByteString(bytes: string): string {
  return Buffer.from(bytes, 'latin1').toString('utf8');
}

function isAlphanumeric(code: number): boolean {
  return (code >= 0x61 && code <= 0x7a) || (code >= 0x41 && code <= 0x5a) || (code >= 0x30 && code <= 0x39);
}

function isHex(code: number): boolean {
  return (code >= 0x30 && code <= 0x39) || (code >= 0x61 && code <= 0x66) || (code >= 0x41 && code <= 0x46);
}

/** Go's shouldEscape: whether byte `code` must be percent-encoded in `mode`. */
function shouldEscape(code: number, mode: Encoding): boolean {
  if (isAlphanumeric(code)) return false;
  const char = String.fromCharCode(code);
  if ((mode === 'host' || mode === 'zone') && `!$&'()*+,;=:[]<>"`.includes(char)) return false;
  if ('-_.~'.includes(char)) return false;
  if ('$&+,/:;=?@'.includes(char)) {
    switch (mode) {
      case 'path':
        return char === '?';
      case 'userPassword':
        return '@/?:'.includes(char);
      case 'queryComponent':
        return true;
      case 'fragment':
        return false;
      default:
        break;
    }
  }
  if (mode === 'fragment' && '!()*'.includes(char)) return false;
  return true;
}

/** Go's unescape: decodes %XX (and '+' in query components); rejects malformed escapes. */
function unescape(bytes: string, mode: Encoding): string {
  for (let i = 0; i < bytes.length; ) {
    const code = bytes.charCodeAt(i);
    if (code === 0x25) {
      if (i + 2 >= bytes.length || !isHex(bytes.charCodeAt(i + 1)) || !isHex(bytes.charCodeAt(i + 2))) {
        throw new UrlParseError('invalid URL escape');
      }
      const escaped = bytes.slice(i, i + 3);
      const value = Number.parseInt(bytes.slice(i + 1, i + 3), 16);
      // In a host, %-encoding is only for non-ASCII bytes, plus %25 in IPv6 zones (RFC 6874).
      if (mode === 'host' && value < 0x80 && escaped !== '%25') throw new UrlParseError('invalid URL escape in host');
      if (mode === 'zone' && escaped !== '%25' && value !== 0x20 && value < 0x80 && shouldEscape(value, 'host')) {
        throw new UrlParseError('invalid URL escape in zone');
      }
      i += 3;
      continue;
    }
    if ((mode === 'host' || mode === 'zone') && code < 0x80 && code !== 0x25 && shouldEscape(code, mode)) {
      throw new UrlParseError('invalid character in host name');
    }
    i++;
  }
  let decoded = '';
  for (let i = 0; i < bytes.length; i++) {
    const char = bytes[i] ?? '';
    if (char === '%') {
      decoded += String.fromCharCode(Number.parseInt(bytes.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (char === '+' && mode === 'queryComponent') {
      decoded += ' ';
    } else {
      decoded += char;
    }
  }
  return decoded;
}

/** Go's escape for path mode: percent-encodes every byte shouldEscape flags, upper-case hex. */
function escapePath(bytes: string): string {
  let escaped = '';
  for (let i = 0; i < bytes.length; i++) {
    const code = bytes.charCodeAt(i);
    escaped += shouldEscape(code, 'path') ? `%${code.toString(16).toUpperCase().padStart(2, '0')}` : bytes[i];
  }
  return escaped;
}

/** Go's validEncoded for paths: only characters a path may carry unescaped. */
function validEncodedPath(bytes: string): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const char = bytes[i] ?? '';
    if (`!$&'()*+,;=:@[]%`.includes(char)) continue;
    if (shouldEscape(bytes.charCodeAt(i), 'path')) return false;
  }
  return true;
}

function validOptionalPort(port: string): boolean {
  return port === '' || /^:[0-9]*$/.test(port);
}

function parseHost(host: string): string {
  if (host.startsWith('[')) {
    const close = host.lastIndexOf(']');
    if (close < 0) throw new UrlParseError("missing ']' in host");
    if (!validOptionalPort(host.slice(close + 1))) throw new UrlParseError('invalid port after host');
    const zone = host.slice(0, close).indexOf('%25');
    if (zone >= 0) {
      return unescape(host.slice(0, zone), 'host') + unescape(host.slice(zone, close), 'zone') + unescape(host.slice(close), 'host');
    }
  } else {
    const colon = host.lastIndexOf(':');
    if (colon >= 0 && !validOptionalPort(host.slice(colon))) throw new UrlParseError('invalid port after host');
  }
  return unescape(host, 'host');
}

function validUserinfo(userinfo: string): boolean {
  for (let i = 0; i < userinfo.length; i++) {
    if (isAlphanumeric(userinfo.charCodeAt(i))) continue;
    if (!"-._:~!$&'()*+,;=%@".includes(userinfo[i] ?? '')) return false;
  }
  return true;
}

function parseAuthority(authority: string): string {
  const at = authority.lastIndexOf('@');
  const host = parseHost(at < 0 ? authority : authority.slice(at + 1));
  if (at >= 0) {
    const userinfo = authority.slice(0, at);
    if (!validUserinfo(userinfo)) throw new UrlParseError('invalid userinfo');
    const colon = userinfo.indexOf(':');
    unescape(colon < 0 ? userinfo : userinfo.slice(0, colon), 'userPassword');
    if (colon >= 0) unescape(userinfo.slice(colon + 1), 'userPassword');
  }
  return host;
}

/** Go's getScheme: a scheme is a letter followed by letters, digits, '+', '-', '.' before ':'. */
function splitScheme(raw: string): { scheme: string; rest: string } {
  for (let i = 0; i < raw.length; i++) {
    const char = raw[i] ?? '';
    if (/[A-Za-z]/.test(char)) continue;
    if (/[0-9+\-.]/.test(char)) {
      if (i === 0) return { scheme: '', rest: raw };
      continue;
    }
    if (char === ':') {
      if (i === 0) throw new UrlParseError('missing protocol scheme');
      return { scheme: raw.slice(0, i), rest: raw.slice(i + 1) };
    }
    return { scheme: '', rest: raw };
  }
  return { scheme: '', rest: raw };
}

/** Parsed URL components, as byte strings (see the module comment). */
interface UrlParts {
  scheme: string;
  host: string;
  path: string;
  rawPath: string;
  rawQuery: string;
}

function parse(raw: string, viaRequest: boolean): UrlParts {
  if (/[\x00-\x1f\x7f]/.test(raw)) throw new UrlParseError('invalid control character in URL');
  if (raw === '' && viaRequest) throw new UrlParseError('empty URL');
  const parts: UrlParts = { scheme: '', host: '', path: '', rawPath: '', rawQuery: '' };
  if (raw === '*') {
    parts.path = '*';
    return parts;
  }
  const split = splitScheme(raw);
  parts.scheme = split.scheme.toLowerCase();
  let rest = split.rest;
  if (rest.endsWith('?') && rest.indexOf('?') === rest.length - 1) {
    rest = rest.slice(0, -1);
  } else {
    const question = rest.indexOf('?');
    if (question >= 0) {
      parts.rawQuery = rest.slice(question + 1);
      rest = rest.slice(0, question);
    }
  }
  if (!rest.startsWith('/')) {
    // A scheme followed by a rootless path is an opaque URI (mailto:x); it has no host or path.
    if (parts.scheme !== '') return parts;
    if (viaRequest) throw new UrlParseError('invalid URI for request');
    const firstSegment = rest.split('/')[0] ?? '';
    if (firstSegment.includes(':')) throw new UrlParseError('first path segment in URL cannot contain colon');
  }
  if ((parts.scheme !== '' || (!viaRequest && !rest.startsWith('///'))) && rest.startsWith('//')) {
    const authorityAndPath = rest.slice(2);
    const slash = authorityAndPath.indexOf('/');
    parts.host = parseAuthority(slash < 0 ? authorityAndPath : authorityAndPath.slice(0, slash));
    rest = slash < 0 ? '' : authorityAndPath.slice(slash);
  }
  parts.path = unescape(rest, 'path');
  parts.rawPath = escapePath(parts.path) === rest ? '' : rest;
  return parts;
}

/** Go's url.URL.Hostname/Port split: a trailing ":digits" is the port; brackets are dropped. */
function splitHostPort(hostPort: string): { hostname: string; port: string } {
  let hostname = hostPort;
  let port = '';
  const colon = hostname.lastIndexOf(':');
  if (colon >= 0 && validOptionalPort(hostname.slice(colon))) {
    port = hostname.slice(colon + 1);
    hostname = hostname.slice(0, colon);
  }
  if (hostname.startsWith('[') && hostname.endsWith(']')) hostname = hostname.slice(1, -1);
  return { hostname, port };
}

/** A URL accepted by Kubernetes' url(). Immutable. */
export class RequestUri {
  readonly #parts: UrlParts;

  private constructor(parts: UrlParts) {
    this.#parts = parts;
    Object.freeze(this);
  }

  /** Parses like Kubernetes: valid for url.ParseRequestURI, components from url.Parse. */
  static parse(text: string): RequestUri {
    const raw = toByteString(text);
    parse(raw, true);
    const hash = raw.indexOf('#');
    const parts = parse(hash < 0 ? raw : raw.slice(0, hash), false);
    if (hash >= 0) unescape(raw.slice(hash + 1), 'fragment');
    return new RequestUri(parts);
  }

  static isValid(text: string): boolean {
    try {
      parse(toByteString(text), true);
      return true;
    } catch (error) {
      if (error instanceof UrlParseError) return false;
      throw error;
    }
  }

  get celTypeName(): string {
    return 'kubernetes.URL';
  }

  get scheme(): string {
    return fromByteString(this.#parts.scheme);
  }

  /** Host with port, IPv6 in brackets. */
  get host(): string {
    return fromByteString(this.#parts.host);
  }

  get hostname(): string {
    return fromByteString(splitHostPort(this.#parts.host).hostname);
  }

  get port(): string {
    return fromByteString(splitHostPort(this.#parts.host).port);
  }

  get escapedPath(): string {
    const { path, rawPath } = this.#parts;
    if (rawPath !== '' && validEncodedPath(rawPath)) {
      try {
        if (unescape(rawPath, 'path') === path) return rawPath;
      } catch (error) {
        if (!(error instanceof UrlParseError)) throw error;
      }
    }
    if (path === '*') return '*';
    return escapePath(path);
  }

  /** Go's url.ParseQuery, ignoring malformed pairs: each key with all its values, in order. */
  get query(): Map<string, string[]> {
    const query = new Map<string, string[]>();
    for (const pair of this.#parts.rawQuery.split('&')) {
      if (pair === '' || pair.includes(';')) continue;
      const equals = pair.indexOf('=');
      let key: string;
      let value: string;
      try {
        key = fromByteString(unescape(equals < 0 ? pair : pair.slice(0, equals), 'queryComponent'));
        value = fromByteString(unescape(equals < 0 ? '' : pair.slice(equals + 1), 'queryComponent'));
      } catch (error) {
        if (error instanceof UrlParseError) continue;
        throw error;
      }
      const values = query.get(key);
      if (values) values.push(value);
      else query.set(key, [value]);
    }
    return query;
  }

  equals(other: RequestUri): boolean {
    const a = this.#parts;
    const b = other.#parts;
    return a.scheme === b.scheme && a.host === b.host && a.path === b.path && a.rawPath === b.rawPath && a.rawQuery === b.rawQuery;
  }
}
