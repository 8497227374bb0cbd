package io.flover.coordinator;

/**
 * A step's time predicted from the tokens it carries, as {@code fixed + perToken * tokens}, fitted by least squares
 * to the steps the group ran lately (older ones weigh less, so the fit follows a changing load or context). The
 * fixed part is what every step pays whatever its width (on a CPU, mostly reading the weights once); the slope is
 * what each more token adds. Until the steps seen differ enough in width to tell the two apart, every nanosecond
 * is put on the tokens, which overestimates a wide step and so errs on the side of short steps.
 */
final class StepCost {
    /** Weight left to a step after each later one: about the last 50 steps count. */
    private static final double DECAY = 0.98;
    /** Width spread, in tokens squared, below which the slope is not trusted. */
    private static final double MIN_VARIANCE = 4;

    private double weight;
    private double tokens;
    private double nanos;
    private double tokensSquared;
    private double tokensTimesNanos;

    void observe(int stepTokens, long stepNanos) {
        weight = weight * DECAY + 1;
        tokens = tokens * DECAY + stepTokens;
        nanos = nanos * DECAY + stepNanos;
        tokensSquared = tokensSquared * DECAY + (double) stepTokens * stepTokens;
        tokensTimesNanos = tokensTimesNanos * DECAY + (double) stepTokens * stepNanos;
    }

    /**
     * The most tokens a step may carry to end within {@code budgetNanos}, at most {@code cap}; {@code cap} while
     * nothing has been observed.
     */
    int tokensWithin(long budgetNanos, int cap) {
        if (weight == 0 || tokens == 0) {
            return cap;
        }
        double meanTokens = tokens / weight;
        double meanNanos = nanos / weight;
        double variance = tokensSquared / weight - meanTokens * meanTokens;
        double perToken = meanNanos / meanTokens;
        double fixed = 0;
        if (variance >= MIN_VARIANCE) {
            double slope = (tokensTimesNanos / weight - meanTokens * meanNanos) / variance;
            double intercept = meanNanos - slope * meanTokens;
            if (slope > 0 && intercept >= 0) { // otherwise noise: keep the all-per-token estimate
                perToken = slope;
                fixed = intercept;
            }
        }
        double fit = (budgetNanos - fixed) / perToken + 1e-6; // not a token short for a rounding error
        return (int) Math.max(0, Math.min(cap, Math.floor(fit)));
    }
}
