// Retry budget: bounds how much load retries may add to an upstream (Envoy's retry_budget semantics).

export interface RetryBudgetOptions {
  /** Retries in flight may be at most this fraction of active requests. Default 0.2 (20%). */
  ratio?: number;
  /** Retries always allowed in flight regardless of the ratio. Default 3. */
  minConcurrent?: number;
}

/**
 * Counts active requests and active retries for one upstream. A retry may start only while
 * `activeRetries < max(minConcurrent, ratio * activeRequests)`, so when an upstream fails hard,
 * retries add at most `ratio` extra load (plus a small floor), instead of multiplying it.
 */
export class RetryBudget {
  private readonly ratio: number;
  private readonly minConcurrent: number;
  /** Client requests currently in flight (each counted once, however many attempts it makes). */
  activeRequests = 0;
  /** Retries currently waiting in backoff or in flight. */
  activeRetries = 0;

  constructor(options: RetryBudgetOptions = {}) {
    this.ratio = options.ratio ?? 0.2;
    this.minConcurrent = options.minConcurrent ?? 3;
  }

  /** Takes a retry slot if the budget allows; the caller must `releaseRetry()` when that retry ends. */
  tryAcquireRetry(): boolean {
    const limit = Math.max(this.minConcurrent, this.ratio * this.activeRequests);
    if (this.activeRetries >= limit) return false;
    this.activeRetries++;
    return true;
  }

  releaseRetry(): void {
    this.activeRetries--;
  }
}
