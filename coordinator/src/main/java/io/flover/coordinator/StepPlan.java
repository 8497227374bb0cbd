package io.flover.coordinator;

import java.util.Arrays;
import java.util.List;

/**
 * What the {@link Planner} decided for one step: the changes to the batch, in the order the scheduler applies them,
 * and then how many tokens each slot of the resulting batch feeds ({@code chunks[slot]}; 0: it sits this step out).
 */
record StepPlan(List<Action> actions, int[] chunks) {
    StepPlan {
        actions = List.copyOf(actions);
    }

    sealed interface Action {
    }

    /** The waiting request {@code id} was cancelled before it was admitted: it ends without running. */
    record Drop(long id) implements Action {
    }

    /**
     * Sequence {@code id}, at {@code slot}, ends now (cancelled by its client, given up as a stalled stream, or
     * ended by a stop string): its blocks return to the pool and the last slot moves into its place; without
     * buffer reordering its row stays, dead, until the rows after it end.
     */
    record Cancel(long id, int slot) implements Action {
    }

    /** The oldest waiting request, {@code id}, joins at {@code slot} with {@code blocks} blocks for its prefill. */
    record Admit(long id, int slot, int blocks) implements Action {
    }

    /** Sequence {@code id}, at {@code slot}, takes {@code blocks} more blocks for this step's tokens. */
    record Grow(long id, int slot, int blocks) implements Action {
    }

    /**
     * Sequence {@code id}, at {@code slot}, gives its blocks back and returns to the front of the queue, to be
     * recomputed later; the last slot moves into its place.
     */
    record Preempt(long id, int slot) implements Action {
    }

    /** Whether there is a step to run: some slot feeds tokens. */
    boolean runs() {
        return Arrays.stream(chunks).anyMatch(c -> c > 0);
    }
}
