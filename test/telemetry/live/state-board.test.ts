import { afterEach, describe, expect, it } from 'vitest';
import { events } from '../../../src/telemetry/events.js';
import { stateBoard } from '../../../src/telemetry/live/state-board.js';
import type { StateBoard } from '../../../src/telemetry/live/state-board.js';

describe('stateBoard', () => {
  let board: StateBoard | undefined;
  afterEach(() => board?.close());

  it('knows each breaker that transitioned, its state, since when and how often', () => {
    let clock = 100;
    board = stateBoard(() => clock);
    events.breakerState.publish({ name: 'api', state: 'open' });
    clock = 200;
    events.breakerState.publish({ name: 'api', state: 'half-open' });
    clock = 300;
    events.breakerState.publish({ name: 'api', state: 'open' });
    events.breakerState.publish({ name: 'fanout:team/a', state: 'open' });
    expect(board.breakers()).toEqual([
      { name: 'api', state: 'open', since: 300, transitions: 3 },
      { name: 'fanout:team/a', state: 'open', since: 300, transitions: 1 },
    ]);
    // A departed fan-out member takes its breaker with it.
    events.fanoutMemberRemoved.publish({ group: 'team', member: 'a', upstream: 'fanout:team/a' });
    expect(board.breakers().map((b) => b.name)).toEqual(['api']);
  });

  it('keeps the reason of a recycle over the exit that follows it, and a later crash over both', () => {
    let clock = 1;
    board = stateBoard(() => clock);
    events.mcpProcess.publish({ server: 'quotes', event: 'started', pid: 10 });
    expect(board.lastExit('quotes')).toBeUndefined();
    events.mcpProcess.publish({
      server: 'quotes',
      event: 'recycled',
      pid: 10,
      reason: 'no answer to a ping',
    });
    clock = 2;
    events.mcpProcess.publish({ server: 'quotes', event: 'exited', pid: 10, reason: 'exited unexpectedly' });
    expect(board.lastExit('quotes')).toEqual({ reason: 'no answer to a ping', at: 1 });
    clock = 3;
    events.mcpProcess.publish({ server: 'quotes', event: 'exited', pid: 11, reason: 'exited after 2.0 s' });
    expect(board.lastExit('quotes')).toEqual({ reason: 'exited after 2.0 s', at: 3 });
  });

  it('stops following once closed', () => {
    board = stateBoard();
    board.close();
    events.breakerState.publish({ name: 'api', state: 'open' });
    expect(board.breakers()).toEqual([]);
  });
});
