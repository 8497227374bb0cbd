package io.flover.worker;

import java.util.List;

/**
 * One fused step, as the coordinator sends it to every rank of a group: slot operations to apply first, then the
 * flat token list of the step, in which entry {@code i} gives slot {@code slots[i]} the next {@code lengths[i]}
 * tokens (a prefill chunk or one decode token) from position {@code firstPositions[i]}, and asks for a sampled
 * token after the last of them when {@code sample[i]}.
 */
public record Step(long id, List<SlotOp> slotOps, int[] tokens, int[] slots, int[] lengths, int[] firstPositions,
                   boolean[] sample) {
    public Step {
        slotOps = List.copyOf(slotOps);
        if (lengths.length != slots.length || firstPositions.length != slots.length || sample.length != slots.length) {
            throw new IllegalArgumentException("per-entry arrays of step " + id + " differ in length");
        }
    }

    /** Entries that sample a token, i.e. the length of the step's result. */
    public int numSampled() {
        int n = 0;
        for (boolean s : sample) {
            n += s ? 1 : 0;
        }
        return n;
    }
}
