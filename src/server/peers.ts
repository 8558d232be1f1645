// Matching a connection's peer address against configured CIDR blocks (trusted proxies).
import { BlockList, isIP } from 'node:net';

/** A parsed `server.trustedProxies` entry. */
export interface Cidr {
  readonly address: string;
  readonly prefix: number;
  readonly family: 'ipv4' | 'ipv6';
}

/**
 * A matcher for peer addresses in any of `blocks` (a constant `false` when there are none). IPv4 peers
 * of a dual-stack socket (`::ffff:a.b.c.d`) match as IPv4.
 */
export function peerMatcher(blocks: readonly Cidr[]): (address: string) => boolean {
  if (blocks.length === 0) return () => false;
  const list = new BlockList();
  for (const { address, prefix, family } of blocks) list.addSubnet(address, prefix, family);
  return (peer) => {
    const v4 = peer.startsWith('::ffff:') ? peer.slice(7) : peer;
    return isIP(v4) === 4 ? list.check(v4, 'ipv4') : isIP(peer) === 6 && list.check(peer, 'ipv6');
  };
}
