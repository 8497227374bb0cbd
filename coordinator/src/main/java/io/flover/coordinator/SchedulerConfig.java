package io.flover.coordinator;

import java.time.Duration;

/**
 * The knobs of the scheduler.
 *
 * @param maxBatch live sequences at most (the slots of the dense batch)
 * @param maxStepTokens tokens one fused step may carry: all decode tokens plus prefill chunks up to this budget
 * @param maxWaiting requests that may wait for admission before new ones are refused
 * @param reorder buffer reordering: a finished sequence's slot is filled at once by the last one. Without it (the
 *     paper's no-shuffle variant, for comparison) a finished row stays in the batch, still computed, until every
 *     row after it has finished too.
 * @param blockSize positions per KV block: the unit the scheduler allocates and every rank's KV cache is paged in
 * @param stepBudgetNanos how long a step may take, 0 for no limit but {@code maxStepTokens}: prompt chunks are cut so
 *     that the step's predicted time ({@link StepCost}) stays within it, so a newcomer's long prompt delays the
 *     running sequences' next token by at most about this much
 */
public record SchedulerConfig(Policy policy, int maxBatch, int maxStepTokens, int maxWaiting, boolean reorder,
                              int blockSize, long stepBudgetNanos) {
    public static final int DEFAULT_BLOCK_SIZE = 16;

    public SchedulerConfig(Policy policy, int maxBatch, int maxStepTokens, int maxWaiting) {
        this(policy, maxBatch, maxStepTokens, maxWaiting, true);
    }

    public SchedulerConfig(Policy policy, int maxBatch, int maxStepTokens, int maxWaiting, boolean reorder) {
        this(policy, maxBatch, maxStepTokens, maxWaiting, reorder, DEFAULT_BLOCK_SIZE, 0);
    }

    public SchedulerConfig {
        if (maxBatch < 1 || maxWaiting < 1) {
            throw new IllegalArgumentException("max batch and max waiting must be at least 1 (every request waits "
                    + "in the queue before its first step)");
        }
        if (maxStepTokens < maxBatch) {
            throw new IllegalArgumentException("the step token budget (" + maxStepTokens
                    + ") must hold one decode token for each of the " + maxBatch + " live sequences");
        }
        if (blockSize < 1) {
            throw new IllegalArgumentException("the KV block size must be at least 1 position, got " + blockSize);
        }
        if (stepBudgetNanos < 0) {
            throw new IllegalArgumentException("the step time budget must not be negative, got " + stepBudgetNanos);
        }
    }

    public static SchedulerConfig defaults(Policy policy) {
        return new SchedulerConfig(policy, 64, 256, 1024);
    }

    public SchedulerConfig withoutReordering() {
        return new SchedulerConfig(policy, maxBatch, maxStepTokens, maxWaiting, false, blockSize, stepBudgetNanos);
    }

    public SchedulerConfig withStepBudget(Duration budget) {
        return new SchedulerConfig(policy, maxBatch, maxStepTokens, maxWaiting, reorder, blockSize, budget.toNanos());
    }
}
