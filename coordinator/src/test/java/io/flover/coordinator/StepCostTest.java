package io.flover.coordinator;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/** The step-time model that cuts prompt chunks to a time budget. */
class StepCostTest {
    private static final long MS = 1_000_000;

    @Test
    void withNothingObservedTheCapHolds() {
        assertEquals(256, new StepCost().tokensWithin(50 * MS, 256));
    }

    @Test
    void stepsOfDifferentWidthsSeparateTheFixedPartFromEachToken() {
        StepCost cost = new StepCost();
        // 10 ms a step plus 0.5 ms a token, as a CPU decoding a few sequences and prefilling chunks.
        for (int i = 0; i < 200; i++) {
            int tokens = 4 + (i * 37) % 200;
            cost.observe(tokens, 10 * MS + tokens * MS / 2);
        }
        assertEquals(80, cost.tokensWithin(50 * MS + MS / 5, 256));
        assertEquals(256, cost.tokensWithin(1000 * MS, 256));
        assertEquals(0, cost.tokensWithin(5 * MS, 256), "not even the fixed part fits");
    }

    @Test
    void stepsAllOfOneWidthPutEveryNanosecondOnTheTokens() {
        StepCost cost = new StepCost();
        for (int i = 0; i < 50; i++) {
            cost.observe(8, 20 * MS); // 2.5 ms a token, as far as these steps tell
        }
        assertEquals(40, cost.tokensWithin(100 * MS, 256));
    }

    @Test
    void recentStepsOutweighOldOnes() {
        StepCost cost = new StepCost();
        for (int i = 0; i < 300; i++) {
            cost.observe(10, 10 * MS); // 1 ms a token
        }
        for (int i = 0; i < 300; i++) {
            cost.observe(10, 40 * MS); // then the machine got busy: 4 ms a token
        }
        assertEquals(25, cost.tokensWithin(100 * MS, 256));
    }
}
