import { BlockList, isIP } from 'node:net';

/** `::ffff:1.2.3.4` (an IPv4 client on a dual-stack socket) → `1.2.3.4`. */
export function normalizeIp(address: string | undefined): string {
  if (address === undefined) return '';
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m !== null ? (m[1] as string) : address;
}

/** An address or CIDR block (`10.0.0.0/8`, `2001:db8::/32`, `1.2.3.4`); undefined if not valid. */
export function parseCidr(spec: string): { family: 'ipv4' | 'ipv6'; address: string; prefix: number } | undefined {
  const slash = spec.indexOf('/');
  const address = slash < 0 ? spec : spec.slice(0, slash);
  const v = isIP(address);
  if (v === 0) return undefined;
  const max = v === 4 ? 32 : 128;
  const prefixText = slash < 0 ? String(max) : spec.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > max) return undefined;
  return { family: v === 4 ? 'ipv4' : 'ipv6', address, prefix };
}

/** A compiled set of CIDR blocks: `has(ip)` is a BlockList check. */
export class CidrSet {
  readonly #list = new BlockList();
  #size = 0;

  add(spec: string): boolean {
    const c = parseCidr(spec);
    if (c === undefined) return false;
    this.#list.addSubnet(c.address, c.prefix, c.family);
    this.#size++;
    return true;
  }

  get size(): number {
    return this.#size;
  }

  has(ip: string): boolean {
    if (this.#size === 0) return false;
    const a = normalizeIp(ip);
    const v = isIP(a);
    if (v === 0) return false;
    return this.#list.check(a, v === 4 ? 'ipv4' : 'ipv6');
  }
}

const compiled = new Map<string, CidrSet | undefined>();

/** Whether `ip` lies in the block `spec` (address or CIDR); compiled blocks are cached. */
export function cidrContains(spec: string, ip: string): boolean {
  let s = compiled.get(spec);
  if (s === undefined && !compiled.has(spec)) {
    if (compiled.size > 10_000) compiled.clear();
    const n = new CidrSet();
    s = n.add(spec) ? n : undefined;
    compiled.set(spec, s);
  }
  return s !== undefined && s.has(ip);
}
