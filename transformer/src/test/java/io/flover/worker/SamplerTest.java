package io.flover.worker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

class SamplerTest {
    private final Sampler sampler = new Sampler();
    private static final float[] THREE = {(float) Math.log(0.5), (float) Math.log(0.3), (float) Math.log(0.2)};

    private static SamplingParams params(float temperature, int topK, float topP, float minP, float penalty, long seed) {
        return new SamplingParams(temperature, topK, topP, minP, penalty, seed);
    }

    @Test
    void greedyTakesTheFirstLargest() {
        float[] logits = {0, 3, 1, 3};
        assertEquals(1, sampler.sample(logits, 0, 4, SamplingParams.GREEDY, new int[0], 0, 0, 0));
        assertEquals(1, sampler.sample(new float[] {9, 0, 5, 1}, 1, 3, SamplingParams.GREEDY, new int[0], 0, 0, 0));
    }

    @Test
    void aStepsRowsGiveTheirArgmaxToGreedyAndTheirLogitsToEveryOtherChoice() {
        // Row 1's argmax as the device found it is 2; its logits, for the samplers, favour token 0 overwhelmingly.
        LogitRows step = new LogitRows(new int[] {0, 2}, new float[] {0, 0, 0, 50, 0, -50});
        assertEquals(2, sampler.sample(step, 1, 3, SamplingParams.GREEDY, new int[0], 0, 0, 0));
        assertEquals(0, sampler.sample(step, 1, 3, params(1, 0, 1, 0, 1, 7), new int[0], 0, 0, 0), "sampled");
        assertEquals(0, sampler.sample(step, 1, 3, params(0, 0, 1, 0, 1.5f, 7), new int[0], 0, 0, 0),
                "greedy under a repetition penalty reads the logits");
        LogitRows argmaxOnly = new LogitRows(new int[] {1}, null);
        assertEquals(1, sampler.sample(argmaxOnly, 0, 3, SamplingParams.GREEDY, new int[0], 0, 0, 0));
    }

    @Test
    void sameSeedAndStepGiveTheSameToken() {
        float[] flat = new float[1000];
        SamplingParams p = params(1, 0, 1, 0, 1, 42);
        for (int step = 0; step < 50; step++) {
            assertEquals(sampler.sample(flat, 0, 1000, p, new int[0], 0, 0, step),
                    new Sampler().sample(flat, 0, 1000, p, new int[0], 0, 0, step));
        }
        Set<Integer> seen = new HashSet<>();
        for (long seed = 0; seed < 20; seed++) {
            seen.add(sampler.sample(flat, 0, 1000, params(1, 0, 1, 0, 1, seed), new int[0], 0, 0, 7));
        }
        assertTrue(seen.size() > 10, "20 seeds over a flat distribution gave only " + seen.size() + " tokens");
    }

    @Test
    void frequenciesFollowTheDistribution() {
        int n = 20000;
        int[] counts = new int[3];
        SamplingParams p = params(1, 0, 1, 0, 1, 3);
        for (int step = 0; step < n; step++) {
            counts[sampler.sample(THREE, 0, 3, p, new int[0], 0, 0, step)]++;
        }
        double[] expected = {0.5, 0.3, 0.2};
        for (int i = 0; i < 3; i++) {
            double sigma = Math.sqrt(n * expected[i] * (1 - expected[i]));
            assertTrue(Math.abs(counts[i] - n * expected[i]) < 4 * sigma, "token " + i + " drawn " + counts[i] + " times");
        }
    }

    @Test
    void temperatureSharpensTheDistribution() {
        int top = 0;
        SamplingParams cold = params(0.1f, 0, 1, 0, 1, 5);
        for (int step = 0; step < 1000; step++) {
            top += sampler.sample(THREE, 0, 3, cold, new int[0], 0, 0, step) == 0 ? 1 : 0;
        }
        assertTrue(top > 990, "at temperature 0.1 the best token won only " + top + " of 1000 draws");
    }

    @Test
    void topKOneIsGreedy() {
        float[] logits = {0.1f, 0.3f, 0.2f, 0.25f};
        for (int step = 0; step < 200; step++) {
            assertEquals(1, sampler.sample(logits, 0, 4, params(5, 1, 1, 0, 1, 9), new int[0], 0, 0, step));
        }
    }

    @Test
    void topPKeepsTheSmallestSetReachingP() {
        Set<Integer> seen = new HashSet<>();
        for (int step = 0; step < 2000; step++) {
            seen.add(sampler.sample(THREE, 0, 3, params(1, 0, 0.6f, 0, 1, 11), new int[0], 0, 0, step));
        }
        assertEquals(Set.of(0, 1), seen);
    }

    @Test
    void minPDropsTokensBelowAFractionOfTheBest() {
        Set<Integer> seen = new HashSet<>();
        for (int step = 0; step < 2000; step++) {
            seen.add(sampler.sample(THREE, 0, 3, params(1, 0, 1, 0.5f, 1, 13), new int[0], 0, 0, step));
        }
        assertEquals(Set.of(0, 1), seen);
    }

    @Test
    void repetitionPenaltyDividesPositiveAndMultipliesNegativeLogits() {
        SamplingParams p = params(0, 0, 1, 0, 2, 0);
        assertEquals(1, sampler.sample(new float[] {2f, 1.9f}, 0, 2, p, new int[] {0}, 1, 0, 0));
        assertEquals(1, sampler.sample(new float[] {-1f, -1.5f}, 0, 2, p, new int[] {0, 0}, 2, 0, 0));
        assertEquals(0, sampler.sample(new float[] {2f, 1.9f}, 0, 2, p, new int[] {0}, 0, 0, 0), "only history[0..n) counts");
    }

    @Test
    void nanLogitsAreNeverChosenAndTinyTemperaturesAreGreedy() {
        float[] logits = {Float.NaN, 1f, 3f, Float.NaN};
        for (int step = 0; step < 50; step++) {
            int t = sampler.sample(logits, 0, 4, params(1, 0, 1, 0.1f, 1, 3), new int[0], 0, 0, step);
            assertTrue(t == 1 || t == 2, "sampled " + t);
        }
        assertEquals(2, sampler.sample(logits, 0, 4, params(1e-39f, 0, 1, 0, 1, 3), new int[0], 0, 0, 0));
    }

    @Test
    void badParametersNameTheField() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> params(Float.NaN, 0, 1, 0, 1, 0))
                .getMessage().contains("temperature"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> params(1, -1, 1, 0, 1, 0))
                .getMessage().contains("top_k"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> params(1, 0, 0, 0, 1, 0))
                .getMessage().contains("top_p"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> params(1, 0, 1, 2, 1, 0))
                .getMessage().contains("min_p"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> params(1, 0, 1, 0, -1, 0))
                .getMessage().contains("repetition_penalty"));
        assertNotEquals(SamplingParams.GREEDY, params(1, 0, 1, 0, 1, 0));
    }

    @Test
    void presenceAndFrequencyPenaliseTheOutputOnly() {
        float[] logits = {3f, 2.5f, 1f};
        int[] history = {0, 0, 0}; // a prompt of one 0, then an output of two
        SamplingParams both = new SamplingParams(0, 0, 1, 0, 1, 0.4f, 0.1f, 0, new int[0], -1, -1, 1);
        SamplingParams presence = new SamplingParams(0, 0, 1, 0, 1, 0.4f, 0, 0, new int[0], -1, -1, 1);
        assertEquals(1, sampler.sample(logits, 0, 3, both, history, 3, 1, 0), "3 - 0.4 - 2 * 0.1 = 2.4 < 2.5");
        assertEquals(0, sampler.sample(logits, 0, 3, presence, history, 3, 1, 0), "3 - 0.4 = 2.6 > 2.5");
        assertEquals(0, sampler.sample(logits, 0, 3, both, history, 3, 3, 0), "prompt tokens are not penalised");
        SamplingParams negative = new SamplingParams(0, 0, 1, 0, 1, 0, -1f, 0, new int[0], -1, -1, 1);
        assertEquals(2, sampler.sample(new float[] {3f, 2.5f, 1f}, 0, 3, negative, new int[] {2, 2, 2}, 3, 0, 0),
                "1 + 3 * 1 = 4 > 3");
        assertFalse(both.argmaxOfLogits());
    }

    @Test
    void minTokensBansTheEndingIdsUntilTheOutputIsLongEnough() {
        float[] logits = {3f, 1f, 2f};
        SamplingParams p = new SamplingParams(0, 0, 1, 0, 1, 0, 0, 2, new int[] {0}, -1, -1, 1);
        assertEquals(2, sampler.sample(logits, 0, 3, p, new int[] {1, 2}, 2, 1, 0), "one output token of two");
        assertEquals(0, sampler.sample(logits, 0, 3, p, new int[] {1, 2, 2}, 3, 1, 0), "two of two");
        SamplingParams sampled = new SamplingParams(1, 0, 1, 0, 1, 0, 0, 2, new int[] {0, 2}, -1, -1, 1);
        for (int step = 0; step < 50; step++) {
            assertEquals(1, sampler.sample(logits, 0, 3, sampled, new int[] {1}, 1, 1, step));
        }
    }
}
