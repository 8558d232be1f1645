// When to restart a supervised process that exited: jittered exponential backoff, and a crash loop's end.

export interface RestartPolicyOptions {
  /** A process that ran at least this long before exiting was healthy: its restart is immediate. Default 30,000 ms. */
  stableAfterMs?: number;
  /** Delay before the first restart after a young exit (one that came sooner than `stableAfterMs`). Default 250 ms. */
  baseDelayMs?: number;
  /** Longest delay between restarts. Default 10,000 ms. */
  maxDelayMs?: number;
  /** Young exits in a row that make a crash loop: the process is not restarted again. Default 5. */
  maxYoungExits?: number;
  /** Injectable random source for the jitter. Default `Math.random`. */
  random?: () => number;
}

/** What to do after an exit: start again after `delayMs`, or stop because the process is crash-looping. */
export type RestartDecision =
  | { readonly restart: true; readonly delayMs: number }
  | { readonly restart: false; readonly youngExits: number };

/**
 * Decides restarts for one supervised slot. Each young exit doubles the delay (`baseDelayMs`,
 * `2 × baseDelayMs`, … up to `maxDelayMs`; each jittered down by up to half, so many slots that die together
 * do not come back together). An exit after a healthy run resets the count and restarts at once. The
 * `maxYoungExits`-th young exit in a row is a crash loop: reported, never spun forever.
 */
export class RestartPolicy {
  private readonly stableAfterMs: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly maxYoungExits: number;
  private readonly random: () => number;
  private youngExits = 0;

  constructor(options: RestartPolicyOptions = {}) {
    this.stableAfterMs = options.stableAfterMs ?? 30_000;
    this.baseDelayMs = options.baseDelayMs ?? 250;
    this.maxDelayMs = options.maxDelayMs ?? 10_000;
    this.maxYoungExits = options.maxYoungExits ?? 5;
    this.random = options.random ?? Math.random;
    if (!(this.maxYoungExits >= 1)) throw new RangeError('maxYoungExits must be at least 1');
    if (!(this.baseDelayMs >= 0 && this.maxDelayMs >= this.baseDelayMs)) {
      throw new RangeError('need 0 <= baseDelayMs <= maxDelayMs');
    }
  }

  /** Records an exit of a process that ran `livedMs`, and decides what comes next. */
  exited(livedMs: number): RestartDecision {
    if (livedMs >= this.stableAfterMs) {
      this.youngExits = 0;
      return { restart: true, delayMs: 0 };
    }
    this.youngExits++;
    if (this.youngExits >= this.maxYoungExits) return { restart: false, youngExits: this.youngExits };
    const ceiling = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (this.youngExits - 1));
    return { restart: true, delayMs: Math.round(ceiling * (0.5 + this.random() / 2)) };
  }
}
