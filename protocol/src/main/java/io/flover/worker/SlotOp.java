package io.flover.worker;

/**
 * A change to a worker's per-slot state, applied before a step runs. Slots are the rows of the dense live
 * batch: a live sequence owns one, and when a sequence leaves, the last slot moves into its hole (Flover's
 * buffer reordering) so the live batch stays {@code [0, n)}. With a paged KV cache a move carries only the
 * slot's metadata, never KV bytes.
 */
public sealed interface SlotOp {
    /**
     * A sequence takes {@code slot}: it samples with {@code sampling} (whose output penalties start after its
     * first {@code promptLength} tokens) and its KV starts in {@code blocks}.
     */
    record Admit(int slot, SamplingParams sampling, int promptLength, int[] blocks) implements SlotOp {
    }

    /** The sequence in {@code slot} grows into more KV blocks. */
    record AppendBlocks(int slot, int[] blocks) implements SlotOp {
    }

    /** The sequence in {@code slot} left; its blocks are back in the coordinator's pool. */
    record Evict(int slot) implements SlotOp {
    }

    /** The sequence in {@code from} now lives in {@code to} (a slot left empty by an eviction). */
    record Move(int from, int to) implements SlotOp {
    }
}
