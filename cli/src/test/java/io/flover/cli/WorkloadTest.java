package io.flover.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** {@code bench serve}'s workloads: reproducible per seed, with the lengths and arrival rates asked for. */
class WorkloadTest {
    private static final Workload.Lengths EIGHT = Workload.Lengths.parse("--prompt-len", "8");

    private static Workload poisson(int count, double rate, String outputs, long seed) {
        return Workload.generate(count, Workload.Arrivals.poisson(rate), EIGHT,
                Workload.Lengths.parse("--output-len", outputs), 1000, seed);
    }

    private static int[] outputs(Workload w) {
        return w.requests().stream().mapToInt(Workload.Request::maxTokens).toArray();
    }

    @Test
    void aSeedDeterminesTheWholeWorkload() {
        Workload a = poisson(200, 5, "lognormal:64:1", 7);
        Workload b = poisson(200, 5, "lognormal:64:1", 7);
        for (int i = 0; i < 200; i++) {
            assertEquals(a.requests().get(i).atNanos(), b.requests().get(i).atNanos());
            assertArrayEquals(a.requests().get(i).prompt(), b.requests().get(i).prompt());
            assertEquals(a.requests().get(i).maxTokens(), b.requests().get(i).maxTokens());
        }
        Workload c = poisson(200, 5, "lognormal:64:1", 8);
        assertNotEquals(a.requests().get(1).atNanos(), c.requests().get(1).atNanos());
        assertNotEquals(Arrays.toString(outputs(a)), Arrays.toString(outputs(c)));
    }

    @Test
    void theRateChangesOnlyTheArrivalTimes() {
        Workload slow = poisson(50, 1, "16:512", 3);
        Workload fast = Workload.generate(50, Workload.Arrivals.poisson(Double.POSITIVE_INFINITY), EIGHT,
                Workload.Lengths.parse("--output-len", "16:512"), 1000, 3);
        assertArrayEquals(outputs(slow), outputs(fast));
        assertArrayEquals(slow.requests().get(9).prompt(), fast.requests().get(9).prompt());
        assertTrue(fast.requests().stream().allMatch(r -> r.atNanos() == 0));
    }

    @Test
    void promptsAreIdsBelowTheVocabularyOfTheAskedLengths() {
        Workload w = Workload.generate(300, Workload.Arrivals.poisson(10), Workload.Lengths.parse("--prompt-len", "3:9"),
                EIGHT, 50, 1);
        assertTrue(w.requests().stream().allMatch(r -> r.prompt().length >= 3 && r.prompt().length <= 9));
        assertTrue(w.requests().stream().flatMapToInt(r -> Arrays.stream(r.prompt())).allMatch(id -> id >= 0 && id < 50));
        assertEquals(50, w.requests().stream().flatMapToInt(r -> Arrays.stream(r.prompt())).distinct().count());
    }

    @Test
    void fixedAndUniformLengths() {
        assertTrue(Arrays.stream(outputs(poisson(100, 1, "16", 1))).allMatch(n -> n == 16));
        int[] uniform = outputs(poisson(20_000, 1, "16:64", 1));
        assertEquals(16, Arrays.stream(uniform).min().orElseThrow());
        assertEquals(64, Arrays.stream(uniform).max().orElseThrow());
        assertEquals(40, Arrays.stream(uniform).average().orElseThrow(), 0.5);
        assertEquals(new Workload.Uniform(3, 5), Workload.Lengths.parse("--x", "3:5"));
    }

    @Test
    void logNormalLengthsHaveTheirMeanAndTheirClip() {
        int[] n = outputs(poisson(20_000, 1, "lognormal:100:0.5", 1));
        assertEquals(100, Arrays.stream(n).average().orElseThrow(), 3);
        double median = Arrays.stream(n).sorted().toArray()[n.length / 2];
        assertEquals(100 * Math.exp(-0.125), median, 3); // the median of a log-normal is exp(mu)
        int[] clipped = outputs(poisson(20_000, 1, "lognormal:20:1.5:64", 1));
        assertEquals(1, Arrays.stream(clipped).min().orElseThrow());
        assertEquals(64, Arrays.stream(clipped).max().orElseThrow());
        assertEquals(64, Workload.Lengths.parse("--x", "lognormal:20:1.5:64").max());
    }

    @Test
    void poissonArrivalsHaveTheMeanRateAndExponentialGaps() {
        List<Workload.Request> r = poisson(20_000, 50, "1", 11).requests();
        assertEquals(0, r.getFirst().atNanos());
        double[] gaps = new double[r.size() - 1];
        for (int i = 1; i < r.size(); i++) {
            gaps[i - 1] = (r.get(i).atNanos() - r.get(i - 1).atNanos()) / 1e9;
        }
        double mean = Arrays.stream(gaps).average().orElseThrow();
        double sd = Math.sqrt(Arrays.stream(gaps).map(g -> (g - mean) * (g - mean)).sum() / gaps.length);
        assertEquals(1 / 50.0, mean, 0.03 / 50);
        assertEquals(1, sd / mean, 0.05, "an exponential distribution's standard deviation is its mean");
    }

    @Test
    void constantArrivalsAreEvenlySpaced() {
        Workload w = Workload.generate(5, Workload.Arrivals.every(2.5), EIGHT, EIGHT, 10, 1);
        assertArrayEquals(new long[] {0, 2_500_000, 5_000_000, 7_500_000, 10_000_000},
                w.requests().stream().mapToLong(Workload.Request::atNanos).toArray());
    }

    @Test
    void aLengthDrawIsWithinItsBounds() {
        Workload.Lengths l = new Workload.LogNormal(3, 2, 10);
        SplittableRandom rnd = new SplittableRandom(5);
        for (int i = 0; i < 1000; i++) {
            int n = l.draw(rnd);
            assertTrue(n >= 1 && n <= 10, Integer.toString(n));
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"5:3", "0", "-4", "0:8", "abc", "1:2:3", "lognormal:10", "lognormal:0:1",
            "lognormal:10:-1", "lognormal:10:1:0", "lognormal:NaN:1", ""})
    void badLengthsNameTheFlag(String spec) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Workload.Lengths.parse("--output-len", spec));
        assertTrue(e.getMessage().startsWith("--output-len: '" + spec + "'"), e.getMessage());
    }
}
