package io.flover.coordinator;

import java.time.Duration;
import java.util.Locale;

/**
 * When waiting requests may join the live batch. All policies run the same steps and kernels, so comparing them
 * measures scheduling alone.
 */
public sealed interface Policy {
    /**
     * How many of the oldest waiting requests may join now ({@code Integer.MAX_VALUE}: as many as fit), given the
     * live batch size and how long the oldest has waited.
     */
    int admissible(int running, int waiting, long oldestWaitNanos);

    /** With nothing admissible and nothing running, how long until {@link #admissible} may say otherwise. */
    long nanosUntilAdmissible(long oldestWaitNanos);

    /** Temporal fusion: newcomers join the very next step. */
    record Fusion() implements Policy {
        @Override
        public int admissible(int running, int waiting, long oldestWaitNanos) {
            return Integer.MAX_VALUE;
        }

        @Override
        public long nanosUntilAdmissible(long oldestWaitNanos) {
            return 0;
        }
    }

    /**
     * Request-level dynamic batching (the FasterTransformer/Triton baseline): a batch forms when {@code maxBatch}
     * requests wait or the oldest has waited {@code maxQueueDelay}, then runs until all its members finish while
     * nobody else joins.
     */
    record DynamicBatching(int maxBatch, Duration maxQueueDelay) implements Policy {
        @Override
        public int admissible(int running, int waiting, long oldestWaitNanos) {
            if (running > 0 || waiting == 0) {
                return 0;
            }
            return waiting >= maxBatch || oldestWaitNanos >= maxQueueDelay.toNanos() ? Math.min(waiting, maxBatch) : 0;
        }

        @Override
        public long nanosUntilAdmissible(long oldestWaitNanos) {
            return Math.max(0, maxQueueDelay.toNanos() - oldestWaitNanos);
        }
    }

    /** One request at a time, in arrival order. */
    static Policy sequential() {
        return new DynamicBatching(1, Duration.ZERO);
    }

    /** The policy named on the command line. */
    static Policy parse(String name, int maxBatch, Duration maxQueueDelay) {
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "fusion" -> new Fusion();
            case "dynamic-batching" -> new DynamicBatching(maxBatch, maxQueueDelay);
            case "sequential" -> sequential();
            default -> throw new IllegalArgumentException("unknown policy '" + name
                    + "' (expected fusion, dynamic-batching or sequential)");
        };
    }
}
