/**
 * Where a webhook may go (docs/protocol.md section 12): never to loopback, private, link-local,
 * unspecified or other non-public addresses unless HUB_WEBHOOK_ALLOW_PRIVATE=1. Checked on the
 * addresses a name resolves to when the task is submitted, and again at connect time through the
 * HTTP agent's `lookup` (a name may resolve elsewhere by then: DNS rebinding).
 */
import dns from 'node:dns';
import net from 'node:net';
import { HubError } from '@utils-hub/protocol';

/** IPv4 ranges refused, as [first octets, prefix length, what]. */
const V4_REFUSED: Array<[number[], number, string]> = [
  [[0], 8, 'unspecified'],
  [[10], 8, 'private'],
  [[100, 64], 10, 'shared (carrier-grade NAT)'],
  [[127], 8, 'loopback'],
  [[169, 254], 16, 'link-local'],
  [[172, 16], 12, 'private'],
  [[192, 0, 0], 24, 'reserved'],
  [[192, 168], 16, 'private'],
  [[198, 18], 15, 'benchmarking'],
  [[224], 4, 'multicast'],
  [[240], 4, 'reserved'],
];

function v4Bits(address: string): number {
  return address.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}

function v4Class(address: string): string | null {
  const bits = v4Bits(address);
  for (const [octets, prefix, what] of V4_REFUSED) {
    const base = v4Bits([...octets, 0, 0, 0, 0].slice(0, 4).join('.'));
    const size = 2 ** (32 - prefix);
    if (bits >= base && bits < base + size) return what;
  }
  return null;
}

/** The 8 groups of an IPv6 address as numbers (with an embedded IPv4 tail expanded). */
function v6Groups(address: string): number[] | null {
  let a = address.toLowerCase().split('%')[0];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (v4) {
    const b = v4Bits(v4[1]);
    a = `${a.slice(0, -v4[1].length)}${(b >>> 16).toString(16)}:${(b & 0xffff).toString(16)}`;
  }
  const [head, tail] = a.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const fill = a.includes('::') ? 8 - h.length - t.length : 0;
  const groups = [...h, ...Array(fill).fill('0'), ...t].map((g) => parseInt(g, 16));
  return groups.length === 8 && groups.every((g) => g >= 0 && g <= 0xffff) ? groups : null;
}

/**
 * Why `address` (an IP address) may not receive webhooks, or null when it is a public address:
 * `loopback`, `private`, `link-local`, `unspecified`, and a few other non-public classes.
 */
export function refusedClass(address: string): string | null {
  const family = net.isIP(address);
  if (family === 4) return v4Class(address);
  if (family !== 6) return 'not an IP address';
  const g = v6Groups(address);
  if (!g) return 'not an IP address';
  if (g.every((x) => x === 0)) return 'unspecified';
  if (g.slice(0, 7).every((x) => x === 0) && g[7] === 1) return 'loopback';
  // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d): the IPv4 address decides.
  if (g.slice(0, 5).every((x) => x === 0) && (g[5] === 0xffff || g[5] === 0)) {
    return v4Class(`${g[6] >> 8}.${g[6] & 255}.${g[7] >> 8}.${g[7] & 255}`);
  }
  if ((g[0] & 0xfe00) === 0xfc00) return 'private';
  if ((g[0] & 0xffc0) === 0xfe80) return 'link-local';
  if ((g[0] & 0xff00) === 0xff00) return 'multicast';
  return null;
}

/** `dns.lookup` with every address of a name, as a promise. */
function lookupAll(host: string): Promise<dns.LookupAddress[]> {
  return new Promise((resolve, reject) => dns.lookup(host, { all: true, verbatim: true }, (err, addresses) => (err ? reject(err) : resolve(addresses))));
}

/** The host of a URL without IPv6 brackets. */
function bareHost(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
}

/**
 * Checks a webhook URL at submit: http or https, no credentials, and (unless `allowPrivate`)
 * every address its host resolves to is public. Throws `bad_request` saying why.
 */
export async function checkWebhookUrl(raw: string, allowPrivate: boolean): Promise<URL> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new HubError('bad_request', 'webhook is not a valid URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new HubError('bad_request', 'webhook must be an http or https URL');
  if (url.username || url.password) throw new HubError('bad_request', 'webhook may not carry credentials');
  if (allowPrivate) return url;
  const host = bareHost(url);
  let addresses: string[];
  if (net.isIP(host)) addresses = [host];
  else {
    try {
      addresses = (await lookupAll(host)).map((a) => a.address);
    } catch {
      throw new HubError('bad_request', `webhook host ${JSON.stringify(host.slice(0, 100))} does not resolve`);
    }
  }
  for (const a of addresses) {
    const why = refusedClass(a);
    if (why)
      throw new HubError(
        'bad_request',
        `webhook host ${JSON.stringify(host.slice(0, 100))} is a ${why} address (${a}); set HUB_WEBHOOK_ALLOW_PRIVATE=1 to allow it`,
      );
  }
  return url;
}

/**
 * A `lookup` for an HTTP agent that fails a connection to a refused address (the check at
 * connect time). With `allowPrivate` it is plain `dns.lookup`.
 */
export function guardedLookup(allowPrivate: boolean): net.LookupFunction {
  return ((
    hostname: string,
    options: dns.LookupOptions,
    callback: (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void,
  ) => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const list = addresses as dns.LookupAddress[];
      if (!allowPrivate) {
        for (const a of list) {
          const why = refusedClass(a.address);
          if (why) {
            const e: NodeJS.ErrnoException = new Error(`webhook host ${hostname} resolves to a ${why} address (${a.address})`);
            e.code = 'EWEBHOOKREFUSED';
            return callback(e, '', 0);
          }
        }
      }
      if (options.all) callback(null, list);
      else callback(null, list[0].address, list[0].family);
    });
  }) as unknown as net.LookupFunction;
}

/** Checks an IP-literal host at connect time (an agent's `lookup` is not called for those). */
export function refusedLiteral(url: URL, allowPrivate: boolean): string | null {
  if (allowPrivate) return null;
  const host = bareHost(url);
  return net.isIP(host) ? refusedClass(host) : null;
}
