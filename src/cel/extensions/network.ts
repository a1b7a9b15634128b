/**
 * The Kubernetes CEL network libraries (k8s.io/apiserver/pkg/cel/library: urls.go, ip.go,
 * cidr.go), for egress rules on destinations:
 *
 *   url(string) kubernetes.URL, isURL(string) bool,
 *     .getScheme() .getHost() .getHostname() .getPort() .getEscapedPath() string,
 *     .getQuery() map<string, list<string>>
 *   ip(string) net.IP, isIP(string) bool, ip.isCanonical(string) bool, string(net.IP),
 *     .family() int, .isUnspecified() .isLoopback() .isLinkLocalMulticast()
 *     .isLinkLocalUnicast() .isGlobalUnicast() bool
 *   cidr(string) net.CIDR, isCIDR(string) bool, string(net.CIDR),
 *     .containsIP(net.IP|string) .containsCIDR(net.CIDR|string) bool, .ip() net.IP,
 *     .prefixLength() int, .masked() net.CIDR
 *   ==, != on net.IP, net.CIDR and kubernetes.URL
 *
 * Invalid input raises a CEL error whose message gives the reason but never the input, so a
 * hostile or secret-bearing header value cannot leak into logs through an error.
 */
import { EvaluationError, type Environment } from '@marcbachmann/cel-js';
import { IpAddress, IpParseError, IpPrefix, parseIpAddress, parseIpPrefix } from './ip-address.js';
import { RequestUri, UrlParseError } from './request-uri.js';

function parseOrThrow<T>(functionName: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof IpParseError || error instanceof UrlParseError) {
      throw new EvaluationError(`${functionName}: ${error.message}`);
    }
    throw error;
  }
}

function succeeds(parse: () => unknown): boolean {
  try {
    parse();
    return true;
  } catch (error) {
    if (error instanceof IpParseError || error instanceof UrlParseError) return false;
    throw error;
  }
}

export function toUrl(text: string): RequestUri {
  return parseOrThrow('url', () => RequestUri.parse(text));
}

export function toIp(text: string): IpAddress {
  return parseOrThrow('ip', () => parseIpAddress(text));
}

export function toCidr(text: string): IpPrefix {
  return parseOrThrow('cidr', () => parseIpPrefix(text));
}

/** Receiver of `ip.isCanonical(s)`; `ip(s)` itself stays a plain function. */
class IpNamespace {}

function registerUrls(env: Environment): void {
  env
    .registerType('kubernetes.URL', RequestUri)
    .registerFunction('url(string): kubernetes.URL', toUrl)
    .registerFunction('isURL(string): bool', (text: string) => RequestUri.isValid(text))
    .registerFunction('kubernetes.URL.getScheme(): string', (url: RequestUri) => url.scheme)
    .registerFunction('kubernetes.URL.getHost(): string', (url: RequestUri) => url.host)
    .registerFunction('kubernetes.URL.getHostname(): string', (url: RequestUri) => url.hostname)
    .registerFunction('kubernetes.URL.getPort(): string', (url: RequestUri) => url.port)
    .registerFunction('kubernetes.URL.getEscapedPath(): string', (url: RequestUri) => url.escapedPath)
    .registerFunction('kubernetes.URL.getQuery(): map<string, list<string>>', (url: RequestUri) => url.query)
    .registerOperator('kubernetes.URL == kubernetes.URL', (a: RequestUri, b: RequestUri) => a.equals(b));
}

function registerIps(env: Environment): void {
  env
    .registerType('net.IP', IpAddress)
    .registerFunction('ip(string): net.IP', toIp)
    .registerFunction('isIP(string): bool', (text: string) => succeeds(() => parseIpAddress(text)))
    .registerType('IpNamespace', IpNamespace)
    .registerConstant('ip', 'IpNamespace', new IpNamespace())
    .registerFunction('IpNamespace.isCanonical(string): bool', (_namespace: IpNamespace, text: string) => toIp(text).toString() === text)
    .registerFunction('string(net.IP): string', (address: IpAddress) => address.toString())
    .registerFunction('net.IP.family(): int', (address: IpAddress) => BigInt(address.family))
    .registerFunction('net.IP.isUnspecified(): bool', (address: IpAddress) => address.isUnspecified())
    .registerFunction('net.IP.isLoopback(): bool', (address: IpAddress) => address.isLoopback())
    .registerFunction('net.IP.isLinkLocalMulticast(): bool', (address: IpAddress) => address.isLinkLocalMulticast())
    .registerFunction('net.IP.isLinkLocalUnicast(): bool', (address: IpAddress) => address.isLinkLocalUnicast())
    .registerFunction('net.IP.isGlobalUnicast(): bool', (address: IpAddress) => address.isGlobalUnicast())
    .registerOperator('net.IP == net.IP', (a: IpAddress, b: IpAddress) => a.equals(b));
}

function registerCidrs(env: Environment): void {
  env
    .registerType('net.CIDR', IpPrefix)
    .registerFunction('cidr(string): net.CIDR', toCidr)
    .registerFunction('isCIDR(string): bool', (text: string) => succeeds(() => parseIpPrefix(text)))
    .registerFunction('string(net.CIDR): string', (prefix: IpPrefix) => prefix.toString())
    .registerFunction('net.CIDR.containsIP(net.IP): bool', (prefix: IpPrefix, address: IpAddress) => prefix.containsAddress(address))
    .registerFunction('net.CIDR.containsIP(string): bool', (prefix: IpPrefix, text: string) => prefix.containsAddress(toIp(text)))
    .registerFunction('net.CIDR.containsCIDR(net.CIDR): bool', (prefix: IpPrefix, other: IpPrefix) => prefix.containsPrefix(other))
    .registerFunction('net.CIDR.containsCIDR(string): bool', (prefix: IpPrefix, text: string) => prefix.containsPrefix(toCidr(text)))
    .registerFunction('net.CIDR.ip(): net.IP', (prefix: IpPrefix) => prefix.address)
    .registerFunction('net.CIDR.prefixLength(): int', (prefix: IpPrefix) => BigInt(prefix.prefixLength))
    .registerFunction('net.CIDR.masked(): net.CIDR', (prefix: IpPrefix) => prefix.masked())
    .registerOperator('net.CIDR == net.CIDR', (a: IpPrefix, b: IpPrefix) => a.equals(b));
}

export function registerNetwork(env: Environment): void {
  registerUrls(env);
  registerIps(env);
  registerCidrs(env);
}
