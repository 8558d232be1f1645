import { describe, expect, it } from 'vitest';
import { sessionIds } from '../../../src/entrypoints/mcp/session-id.js';

const SECRET = 's'.repeat(32);
const REPLICAS = ['10.0.0.1:8080', '10.0.0.2:8080'];
const a = sessionIds({ secret: SECRET, self: REPLICAS[0], replicas: REPLICAS });
const b = sessionIds({ secret: SECRET, self: REPLICAS[1], replicas: REPLICAS });

describe('signed /mcp session ids', () => {
  it('mints distinct ids of visible ASCII that their owner knows as its own', () => {
    const ids = new Set(Array.from({ length: 100 }, () => a.mint()));
    expect(ids.size).toBe(100);
    for (const id of ids) {
      expect(id).toMatch(/^[\x21-\x7e]+$/);
      expect(a.ownerOf(id)).toEqual({ local: true });
    }
  });

  it('names the owner to every other replica sharing the secret, and to no one without it', () => {
    const id = a.mint();
    expect(b.ownerOf(id)).toEqual({ replica: '10.0.0.1:8080' });
    const stranger = sessionIds({ secret: 't'.repeat(32), self: REPLICAS[1], replicas: REPLICAS });
    expect(stranger.ownerOf(id)).toBeUndefined();
  });

  it('refuses an owner that is not a configured replica, even when validly signed', () => {
    const outsider = sessionIds({ secret: SECRET, self: '10.9.9.9:80', replicas: ['10.9.9.9:80'] });
    expect(b.ownerOf(outsider.mint())).toBeUndefined();
  });

  it('refuses any other spelling of a valid id: one session, one id', () => {
    const id = a.mint();
    const [version, owner, random, mac] = id.split('.') as [string, string, string, string];
    // 22 base64url characters carry 16 bytes and 4 spare bits: flipping a spare bit decodes to the same MAC.
    const last = mac.at(-1)!;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const sameBytes = alphabet[alphabet.indexOf(last) ^ 1]!;
    expect(Buffer.from(`${mac.slice(0, -1)}${sameBytes}`, 'base64url')).toEqual(
      Buffer.from(mac, 'base64url'),
    );
    expect(b.ownerOf(`${version}.${owner}.${random}.${mac.slice(0, -1)}${sameBytes}`)).toBeUndefined();
    expect(b.ownerOf(`${id}.x`)).toBeUndefined();
    expect(b.ownerOf(`s2.${owner}.${random}.${mac}`)).toBeUndefined();
  });

  it("names the worker under --workers: a sibling's session goes to it, another replica's worker to that replica", () => {
    /** Worker `index` of 2, on replica `self` (null: a machine without an advertised address). */
    const worker = (index: number, self: string | null = REPLICAS[0]!) =>
      sessionIds({
        secret: SECRET,
        self: self ?? undefined,
        replicas: self === null ? [] : REPLICAS,
        worker: { index, count: 2 },
      });
    const id = worker(2).mint();
    expect(Buffer.from(id.split('.')[1]!, 'base64url').toString()).toBe('10.0.0.1:8080/2');
    expect(worker(2).ownerOf(id)).toEqual({ local: true });
    expect(worker(1).ownerOf(id)).toEqual({ worker: 2 });
    expect(b.ownerOf(id)).toEqual({ replica: '10.0.0.1:8080' });
    // One machine without an advertised address: the workers only.
    const machine = worker(1, null).mint();
    expect(Buffer.from(machine.split('.')[1]!, 'base64url').toString()).toBe('/1');
    expect(worker(2, null).ownerOf(machine)).toEqual({ worker: 1 });
    // A worker number past N is no one.
    const outOfRange = sessionIds({
      secret: SECRET,
      self: undefined,
      replicas: [],
      worker: { index: 3, count: 3 },
    });
    expect(worker(1, null).ownerOf(outOfRange.mint())).toBeUndefined();
  });
});
