/**
 * IP addresses and prefixes with the parsing rules of Go's net/netip, which the Kubernetes CEL
 * library (k8s.io/apiserver/pkg/cel/library, ip.go and cidr.go) relies on:
 * IPv4 is exactly four decimal octets without leading zeros; IPv6 allows one "::" and a
 * trailing dotted IPv4; zones and IPv4-mapped IPv6 addresses are refused, as Kubernetes does.
 *
 * Parse failures throw IpParseError with a reason that never contains the input.
 */

export class IpParseError extends Error {}

export type IpFamily = 4 | 6;

/** An IP address: 4 or 16 bytes. Immutable. */
export class IpAddress {
  readonly bytes: Uint8Array;

  constructor(bytes: Uint8Array) {
    if (bytes.length !== 4 && bytes.length !== 16) throw new IpParseError('an IP address has 4 or 16 bytes');
    this.bytes = Uint8Array.from(bytes);
    Object.freeze(this);
  }

  /** The CEL type name (used by string.format's error messages). */
  get celTypeName(): string {
    return 'net.IP';
  }

  get family(): IpFamily {
    return this.bytes.length === 4 ? 4 : 6;
  }

  equals(other: IpAddress): boolean {
    return this.bytes.length === other.bytes.length && this.bytes.every((byte, i) => byte === other.bytes[i]);
  }

  isUnspecified(): boolean {
    return this.bytes.every((byte) => byte === 0);
  }

  isLoopback(): boolean {
    if (this.family === 4) return this.bytes[0] === 127;
    return this.bytes.slice(0, 15).every((byte) => byte === 0) && this.bytes[15] === 1;
  }

  isMulticast(): boolean {
    if (this.family === 4) return ((this.bytes[0] ?? 0) & 0xf0) === 0xe0;
    return this.bytes[0] === 0xff;
  }

  isLinkLocalMulticast(): boolean {
    if (this.family === 4) return this.bytes[0] === 224 && this.bytes[1] === 0 && this.bytes[2] === 0;
    return this.bytes[0] === 0xff && ((this.bytes[1] ?? 0) & 0x0f) === 0x02;
  }

  isLinkLocalUnicast(): boolean {
    if (this.family === 4) return this.bytes[0] === 169 && this.bytes[1] === 254;
    return this.bytes[0] === 0xfe && ((this.bytes[1] ?? 0) & 0xc0) === 0x80;
  }

  /** Go's netip.Addr.IsGlobalUnicast: private ranges and ULAs count as global unicast. */
  isGlobalUnicast(): boolean {
    if (this.family === 4 && this.bytes.every((byte) => byte === 255)) return false;
    return !this.isUnspecified() && !this.isLoopback() && !this.isMulticast() && !this.isLinkLocalUnicast();
  }

  /** Canonical text: dotted decimal, or RFC 5952 IPv6 (lower case, longest zero run as "::"). */
  toString(): string {
    if (this.family === 4) return this.bytes.join('.');
    const groups = Array.from({ length: 8 }, (_, i) => ((this.bytes[2 * i] ?? 0) << 8) | (this.bytes[2 * i + 1] ?? 0));
    let bestStart = -1;
    let bestLength = 0;
    for (let i = 0; i < 8; ) {
      if (groups[i] !== 0) {
        i++;
        continue;
      }
      let end = i;
      while (end < 8 && groups[end] === 0) end++;
      if (end - i > bestLength) {
        bestStart = i;
        bestLength = end - i;
      }
      i = end;
    }
    const hex = groups.map((group) => group.toString(16));
    if (bestLength < 2) return hex.join(':');
    return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
  }
}

function parseIpv4Bytes(text: string): Uint8Array | undefined {
  const fields = text.split('.');
  if (fields.length !== 4) return undefined;
  const bytes = new Uint8Array(4);
  for (const [i, field] of fields.entries()) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(field)) return undefined;
    const value = Number(field);
    if (value > 255) return undefined;
    bytes[i] = value;
  }
  return bytes;
}

function parseIpv6Bytes(text: string): Uint8Array | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const toGroups = (part: string): number[] | undefined => {
    if (part === '') return [];
    const pieces = part.split(':');
    const groups: number[] = [];
    for (const [i, piece] of pieces.entries()) {
      if (i === pieces.length - 1 && piece.includes('.')) {
        const v4 = parseIpv4Bytes(piece);
        if (!v4) return undefined;
        groups.push(((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0));
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(piece)) return undefined;
      groups.push(Number.parseInt(piece, 16));
    }
    return groups;
  };
  const head = toGroups(halves[0] ?? '');
  const tail = halves.length === 2 ? toGroups(halves[1] ?? '') : [];
  if (!head || !tail) return undefined;
  let groups: number[];
  if (halves.length === 2) {
    // "::" stands for at least one zero group.
    const missing = 8 - head.length - tail.length;
    if (missing < 1) return undefined;
    groups = [...head, ...new Array<number>(missing).fill(0), ...tail];
  } else {
    groups = head;
  }
  if (groups.length !== 8) return undefined;
  const bytes = new Uint8Array(16);
  groups.forEach((group, i) => {
    bytes[2 * i] = group >> 8;
    bytes[2 * i + 1] = group & 0xff;
  });
  return bytes;
}

function isIpv4Mapped(bytes: Uint8Array): boolean {
  return bytes.length === 16 && bytes.slice(0, 10).every((byte) => byte === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
}

/** Parses an IP address the way Kubernetes' ip() does. */
export function parseIpAddress(text: string): IpAddress {
  if (text.includes('%')) throw new IpParseError('IP address with zone value is not allowed');
  const bytes = text.includes(':') ? parseIpv6Bytes(text) : parseIpv4Bytes(text);
  if (!bytes) throw new IpParseError('invalid IP address');
  if (isIpv4Mapped(bytes)) throw new IpParseError('IPv4-mapped IPv6 address is not allowed');
  return new IpAddress(bytes);
}

/** An IP prefix ("CIDR"): an address, kept as written, and a prefix length. Immutable. */
export class IpPrefix {
  constructor(
    readonly address: IpAddress,
    readonly prefixLength: number,
  ) {
    Object.freeze(this);
  }

  get celTypeName(): string {
    return 'net.CIDR';
  }

  /** The prefix with the host bits of its address cleared. */
  masked(): IpPrefix {
    const bytes = Uint8Array.from(this.address.bytes);
    for (let bit = this.prefixLength; bit < bytes.length * 8; bit++) {
      const index = bit >> 3;
      bytes[index] = (bytes[index] ?? 0) & ~(0x80 >> (bit & 7));
    }
    return new IpPrefix(new IpAddress(bytes), this.prefixLength);
  }

  containsAddress(address: IpAddress): boolean {
    if (address.family !== this.address.family) return false;
    return new IpPrefix(address, this.prefixLength).masked().address.equals(this.masked().address);
  }

  containsPrefix(other: IpPrefix): boolean {
    return other.prefixLength >= this.prefixLength && this.containsAddress(other.address);
  }

  equals(other: IpPrefix): boolean {
    return this.prefixLength === other.prefixLength && this.address.equals(other.address);
  }

  toString(): string {
    return `${this.address.toString()}/${this.prefixLength}`;
  }
}

/** Parses "address/length" the way Kubernetes' cidr() does (Go's netip.ParsePrefix). */
export function parseIpPrefix(text: string): IpPrefix {
  const slash = text.lastIndexOf('/');
  if (slash < 0) throw new IpParseError("invalid CIDR: no '/'");
  if (text.slice(0, slash).includes('%')) throw new IpParseError('CIDR with zone value is not allowed');
  let address: IpAddress;
  try {
    address = parseIpAddress(text.slice(0, slash));
  } catch (error) {
    if (error instanceof IpParseError) throw new IpParseError(`invalid CIDR: ${error.message}`);
    throw error;
  }
  const lengthText = text.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(lengthText)) throw new IpParseError('invalid CIDR: bad prefix length');
  const prefixLength = Number(lengthText);
  if (prefixLength > address.bytes.length * 8) throw new IpParseError('invalid CIDR: prefix length out of range');
  return new IpPrefix(address, prefixLength);
}
