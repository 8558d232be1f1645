// Questions the supervisor asks its workers over IPC (metrics, purges): ids, timeouts, a bound on those in flight.
import type { ChildProcess } from 'node:child_process';
import type { Answer, Question } from './messages.js';

interface Pending {
  readonly child: ChildProcess;
  resolve(value: unknown): void;
  reject(error: Error): void;
  readonly timer: NodeJS.Timeout;
}

/**
 * Matches answers to questions by id. Each question has its own timeout; at most `maxPending` wait at once
 * (beyond, `ask` fails at once); a child that exits fails its questions at once (`childExited`).
 */
export class Questions {
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;

  /** @param maxPending questions waiting at once. Default 1,000. */
  constructor(private readonly maxPending = 1_000) {}

  /** Sends `question(id)` to `child`; resolves with the answer's value, rejects on its error or after `timeoutMs`. */
  ask(child: ChildProcess, question: (id: number) => Question, timeoutMs: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (!child.connected) return reject(new Error(`process ${child.pid} is not connected`));
      if (this.pending.size >= this.maxPending) return reject(new Error('too many questions in flight'));
      const id = this.nextId++;
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`process ${child.pid} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { child, resolve, reject, timer });
      try {
        child.send(question(id));
      } catch (error) {
        this.settle(id)?.reject(error as Error);
      }
    });
  }

  /** Delivers an answer to its question (an answer nobody waits for any more is dropped). */
  answered(answer: Answer): void {
    const waiting = this.settle(answer.id);
    if (waiting === undefined) return;
    if ('error' in answer) waiting.reject(new Error(answer.error));
    else waiting.resolve(answer.value);
  }

  /** Fails every question waiting on `child` (it exited), or on anyone when `child` is undefined. */
  fail(child: ChildProcess | undefined, reason: string): void {
    for (const [id, waiting] of this.pending) {
      if (child === undefined || waiting.child === child) this.settle(id)?.reject(new Error(reason));
    }
  }

  private settle(id: number): Pending | undefined {
    const waiting = this.pending.get(id);
    if (waiting === undefined) return undefined;
    this.pending.delete(id);
    clearTimeout(waiting.timer);
    return waiting;
  }
}
