package io.flover.cli;

import io.flover.coordinator.Policy;
import io.flover.coordinator.SchedulerConfig;
import java.time.Duration;
import picocli.CommandLine.Option;

/** The fusion schedule's flags, shared by {@code serve} and {@code coordinator}. */
final class SchedulerFlags {
    @Option(names = "--policy", defaultValue = "fusion",
            description = "fusion, dynamic-batching or sequential (default: ${DEFAULT-VALUE})")
    String policy;

    @Option(names = "--max-batch", defaultValue = "64", description = "live sequences at most (default: ${DEFAULT-VALUE})")
    int maxBatch;

    @Option(names = "--max-queue-delay", paramLabel = "MS", defaultValue = "10",
            description = "dynamic-batching: how long the oldest request waits for a batch to fill, in ms (default: ${DEFAULT-VALUE})")
    long maxQueueDelayMs;

    @Option(names = "--max-step-tokens", defaultValue = "256",
            description = "tokens per fused step: decode tokens plus prompt chunks (default: ${DEFAULT-VALUE})")
    int maxStepTokens;

    @Option(names = "--step-budget-ms", paramLabel = "MS", defaultValue = "0",
            description = "cut prompt chunks so that a step is predicted to take at most this long (from the steps "
                    + "run so far), bounding how long a newcomer's prompt delays everyone's next token; 0: only "
                    + "--max-step-tokens limits a step (default: ${DEFAULT-VALUE})")
    long stepBudgetMs;

    @Option(names = "--max-waiting", defaultValue = "1024",
            description = "requests queued before new ones are refused with RESOURCE_EXHAUSTED (default: ${DEFAULT-VALUE})")
    int maxWaiting;

    /** The configuration, or IllegalArgumentException naming the flag that is wrong. */
    SchedulerConfig config() {
        Flags.require(maxBatch >= 1, "--max-batch must be at least 1, got " + maxBatch);
        Flags.require(maxStepTokens >= maxBatch, "--max-step-tokens (" + maxStepTokens
                + ") must be at least --max-batch (" + maxBatch + "): every live sequence decodes a token per step");
        Flags.require(maxWaiting >= 1, "--max-waiting must be at least 1, got " + maxWaiting);
        Flags.require(maxQueueDelayMs >= 0, "--max-queue-delay must not be negative, got " + maxQueueDelayMs);
        Flags.require(stepBudgetMs >= 0, "--step-budget-ms must not be negative, got " + stepBudgetMs);
        Policy p;
        try {
            p = Policy.parse(policy, maxBatch, Duration.ofMillis(maxQueueDelayMs));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--policy: " + e.getMessage(), e);
        }
        return new SchedulerConfig(p, maxBatch, maxStepTokens, maxWaiting).withStepBudget(Duration.ofMillis(stepBudgetMs));
    }
}
