package io.flover.coordinator;

import io.flover.worker.Step;

/** Where fused steps execute: an in-process shard, or a group of remote tensor-parallel workers. */
public interface StepRunner {
    /** Runs a step on every rank; returns the sampled ids, one per entry that samples, in entry order. */
    int[] run(Step step);

    /** Drops all slot state after a failed step, so the next step starts from an empty batch. */
    void reset();
}
