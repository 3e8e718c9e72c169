import ipaddr from 'ipaddr.js';

/**
 * Why a callback may not go to this address, or null when it may: only global unicast addresses are allowed.
 * Every textual form is parsed to its bytes first (ipaddr.js), so `::ffff:127.0.0.1`, `::ffff:7f00:1`,
 * `0177.0.0.1`, `0x7f000001` and `2130706433` are all the loopback address they spell. IPv6 forms that carry
 * an IPv4 address are judged by that address (IPv4-mapped, and NAT64's well-known prefix 64:ff9b::/96, which
 * an IPv6-only network uses to reach IPv4 hosts); the deprecated forms that route somewhere we cannot predict
 * (IPv4-compatible ::/96, SIIT ::ffff:0:0:0/96, 6to4, Teredo, local-use NAT64 64:ff9b:1::/48) are refused.
 */
export function addressRefusal(address: string): string | null {
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    parsed = ipaddr.parse(address);
  } catch {
    return `${address} is not an IP address`;
  }
  if (parsed.kind() === 'ipv4') return ipv4Refusal(parsed as ipaddr.IPv4, address);
  const v6 = parsed as ipaddr.IPv6;
  const range = v6.range();
  if (range === 'ipv4Mapped') return ipv4Refusal(v6.toIPv4Address(), address);
  if (range === 'rfc6052' && v6.match(NAT64_WELL_KNOWN)) return ipv4Refusal(embeddedIPv4(v6), address);
  if (range === 'unicast' && v6.match(IPV4_COMPATIBLE)) return `${address} is not a public address (IPv4-compatible)`;
  return range === 'unicast' ? null : `${address} is not a public address (${RANGE_NAMES[range] ?? range})`;
}

/**
 * An address in the form to connect to (an IPv4-mapped address as the IPv4 address it carries, where its
 * packets go), or null when it is not an IP address.
 */
export function canonicalAddress(address: string): { address: string; family: 4 | 6 } | null {
  if (!ipaddr.isValid(address)) return null;
  const parsed = ipaddr.process(address);
  return { address: parsed.toString(), family: parsed.kind() === 'ipv4' ? 4 : 6 };
}

const NAT64_WELL_KNOWN = ipaddr.parseCIDR('64:ff9b::/96');
const IPV4_COMPATIBLE = ipaddr.parseCIDR('::/96');

function embeddedIPv4(v6: ipaddr.IPv6): ipaddr.IPv4 {
  const bytes = v6.toByteArray();
  return new ipaddr.IPv4(bytes.slice(12));
}

function ipv4Refusal(v4: ipaddr.IPv4, given: string): string | null {
  const range = v4.range();
  if (range === 'unicast') return null;
  const spelled = v4.toString() === given ? given : `${given} (${v4.toString()})`;
  return `${spelled} is not a public address (${RANGE_NAMES[range] ?? range})`;
}

/** ipaddr.js's range names as a sentence says them. */
const RANGE_NAMES: Record<string, string> = {
  unspecified: 'unspecified',
  broadcast: 'broadcast',
  multicast: 'multicast',
  linkLocal: 'link-local',
  loopback: 'loopback',
  carrierGradeNat: 'carrier-grade NAT (100.64.0.0/10)',
  private: 'private',
  reserved: 'reserved',
  uniqueLocal: 'unique-local',
  ipv4Mapped: 'IPv4-mapped',
  rfc6145: 'SIIT-translated (::ffff:0:0:0/96)',
  rfc6052: 'local-use NAT64',
  '6to4': '6to4',
  teredo: 'Teredo',
  deprecatedSiteLocal: 'site-local',
  discard: 'discard-only',
  benchmarking: 'benchmarking',
  amt: 'AMT',
  as112v6: 'AS112',
  as112: 'AS112',
  orchid2: 'ORCHIDv2',
  droneRemoteIdProtocolEntityTags: 'DRIP',
  deprecated: 'deprecated',
};
