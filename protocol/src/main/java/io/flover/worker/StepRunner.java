package io.flover.worker;

/**
 * Where fused steps execute: an in-process shard, the ranks of an in-process tensor-parallel group, or a group of
 * remote workers. Steps come one at a time from the scheduler thread.
 */
public interface StepRunner extends AutoCloseable {
    /** Runs a step on every rank; returns the sampled ids, one per entry that samples, in entry order. */
    StepResult run(Step step);

    /** Drops all slot state after a failed step, so the next step starts from an empty batch. */
    void reset();

    /** Releases what the runner holds (threads, connections); the model itself belongs to whoever opened it. */
    @Override
    void close();
}
