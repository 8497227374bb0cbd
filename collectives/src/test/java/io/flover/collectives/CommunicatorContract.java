package io.flover.collectives;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * What every multi-rank {@link Communicator} must do, with each rank driven by its own thread as in production:
 * sums against a float64 reference, bitwise agreement between ranks, placement at offsets, ints gathered as ints,
 * and failures that surface as {@link CollectiveException} within the timeout instead of hanging.
 */
abstract class CommunicatorContract {
    static final Duration TIMEOUT = Duration.ofSeconds(10);
    static final Duration SHORT_TIMEOUT = Duration.ofMillis(500);
    /** Float32 error of summing four values in [-1, 1] in any order, with room to spare. */
    private static final double TOLERANCE = 1e-5;

    final ExecutorService threads = Executors.newCachedThreadPool();
    final List<AutoCloseable> toClose = new ArrayList<>();

    /** A new group of {@code size} ranks, rank r at index r; what to close after the test goes in {@link #toClose}. */
    abstract List<Communicator> form(int size, Duration timeout) throws Exception;

    @AfterEach
    void closeEverything() throws Exception {
        for (AutoCloseable c : toClose) {
            c.close();
        }
        threads.shutdownNow();
    }

    @FunctionalInterface
    interface RankTask<T> {
        T run(Communicator c) throws Exception;
    }

    /** Runs {@code task} on every rank at once, each on its own thread, and returns what each returned. */
    <T> List<T> onEveryRank(List<Communicator> group, RankTask<T> task) throws Exception {
        List<Future<T>> futures = new ArrayList<>();
        for (Communicator c : group) {
            futures.add(threads.submit(() -> task.run(c)));
        }
        List<T> results = new ArrayList<>();
        for (Future<T> f : futures) {
            try {
                results.add(f.get());
            } catch (ExecutionException e) {
                throw e.getCause() instanceof Exception cause ? cause : e;
            }
        }
        return results;
    }

    /** What each rank threw running {@code task}, or null for a rank that returned. */
    List<Throwable> outcomes(List<Communicator> group, RankTask<?> task) throws Exception {
        return onEveryRank(group, c -> {
            try {
                task.run(c);
                return null;
            } catch (Exception e) {
                return e;
            }
        });
    }

    static float[] values(int rank, int length) {
        SplittableRandom random = new SplittableRandom(1000L * rank + length);
        float[] v = new float[length];
        for (int i = 0; i < length; i++) {
            v[i] = (float) random.nextDouble(-1, 1);
        }
        return v;
    }

    /** {@code length} floats of {@code a} from {@code offset}, as the segment a collective takes. */
    static MemorySegment floats(float[] a, int offset, int length) {
        return MemorySegment.ofArray(a).asSlice((long) offset * Float.BYTES, (long) length * Float.BYTES);
    }

    static MemorySegment all(float[] a) {
        return MemorySegment.ofArray(a);
    }

    static int[] bits(float[] v) {
        int[] b = new int[v.length];
        Arrays.setAll(b, i -> Float.floatToRawIntBits(v[i]));
        return b;
    }

    static Stream<Arguments> sizesAndLengths() {
        return Stream.of(2, 3, 4).flatMap(size -> Stream.of(1, 2, 7, 1001, 65537, (1 << 20) + 3)
                .map(length -> Arguments.of(size, length)));
    }

    @ParameterizedTest(name = "{0} ranks, {1} floats")
    @MethodSource("sizesAndLengths")
    void allReduceSumMatchesAFloat64SumAndIsBitwiseIdenticalOnEveryRank(int size, int length) throws Exception {
        checkAllReduce(form(size, TIMEOUT), length);
    }

    void checkAllReduce(List<Communicator> group, int length) throws Exception {
        int size = group.size();
        List<float[]> results = onEveryRank(group, c -> {
            float[] v = values(c.rank(), length);
            c.allReduceSum(all(v));
            return v;
        });
        double[] expected = new double[length];
        for (int r = 0; r < size; r++) {
            float[] v = values(r, length);
            for (int i = 0; i < length; i++) {
                expected[i] += v[i];
            }
        }
        for (int i = 0; i < length; i++) {
            assertEquals(expected[i], results.get(0)[i], TOLERANCE, "element " + i);
        }
        for (int r = 1; r < size; r++) {
            assertArrayEquals(bits(results.get(0)), bits(results.get(r)), "rank " + r + " differs from rank 0");
        }
    }

    @Test
    void allReduceSumTouchesOnlyItsRange() throws Exception {
        List<float[]> results = onEveryRank(form(3, TIMEOUT), c -> {
            float[] v = new float[120];
            Arrays.fill(v, c.rank() + 1);
            c.allReduceSum(floats(v, 5, 100));
            return v;
        });
        for (int r = 0; r < 3; r++) {
            float[] v = results.get(r);
            for (int i = 0; i < v.length; i++) {
                assertEquals(i >= 5 && i < 105 ? 6f : r + 1f, v[i], "rank " + r + " element " + i);
            }
        }
    }

    @ParameterizedTest(name = "{0} floats per rank")
    @ValueSource(ints = {1, 5, 70001})
    void allGatherPlacesEachRanksPartAtItsRanksOffset(int length) throws Exception {
        int size = 3;
        int sendOffset = 3;
        int recvOffset = 7;
        List<float[]> results = onEveryRank(form(size, TIMEOUT), c -> {
            float[] send = new float[sendOffset + length + 2];
            System.arraycopy(values(c.rank(), length), 0, send, sendOffset, length);
            float[] recv = new float[recvOffset + size * length + 4];
            Arrays.fill(recv, -7f);
            c.allGather(floats(send, sendOffset, length), floats(recv, recvOffset, size * length));
            return recv;
        });
        float[] expected = new float[recvOffset + size * length + 4];
        Arrays.fill(expected, -7f);
        for (int r = 0; r < size; r++) {
            System.arraycopy(values(r, length), 0, expected, recvOffset + r * length, length);
        }
        for (float[] recv : results) {
            assertArrayEquals(bits(expected), bits(recv));
        }
    }

    @ParameterizedTest(name = "{0} ints per rank")
    @ValueSource(ints = {1, 5, 70001})
    void allGatherCarriesIntsBitForBit(int length) throws Exception {
        int size = 3;
        // ints whose float reading is a NaN, a denormal or beyond float's exact integers
        int[] kinds = {0x7fc00001, 0xffffffff, 1, (1 << 24) + 1, Integer.MIN_VALUE};
        List<int[]> results = onEveryRank(form(size, TIMEOUT), c -> {
            int[] send = new int[length];
            Arrays.setAll(send, i -> kinds[(i + c.rank()) % kinds.length] ^ i);
            int[] recv = new int[size * length];
            c.allGather(MemorySegment.ofArray(send), MemorySegment.ofArray(recv));
            return recv;
        });
        int[] expected = new int[size * length];
        Arrays.setAll(expected, j -> kinds[(j % length + j / length) % kinds.length] ^ (j % length));
        for (int[] recv : results) {
            assertArrayEquals(expected, recv);
        }
    }

    @Test
    void barrierReturnsOnlyOnceEveryRankHasEnteredIt() throws Exception {
        List<Communicator> group = form(3, TIMEOUT);
        long[] entered = new long[1];
        List<Long> returned = onEveryRank(group, c -> {
            if (c.rank() == 2) {
                Thread.sleep(200);
                entered[0] = System.nanoTime();
            }
            c.barrier();
            return System.nanoTime();
        });
        for (long t : returned) {
            assertTrue(t >= entered[0], "a rank left the barrier before the last one entered");
        }
    }

    @Test
    void operationsOfEveryKindInterleaveWithoutMixingUp() throws Exception {
        List<Communicator> group = form(3, TIMEOUT);
        onEveryRank(group, c -> {
            for (int round = 0; round < 200; round++) {
                int length = 1 + round * 37 % 900;
                float[] v = new float[length];
                Arrays.fill(v, c.rank() + round);
                c.allReduceSum(all(v));
                assertEquals(3 * round + 3, v[length - 1]);
                float[] gathered = new float[3 * length];
                c.allGather(all(v), all(gathered));
                assertEquals(v[0], gathered[2 * length]);
                int[] ids = {c.rank(), round};
                int[] allIds = new int[6];
                c.allGather(MemorySegment.ofArray(ids), MemorySegment.ofArray(allIds));
                assertArrayEquals(new int[] {0, round, 1, round, 2, round}, allIds);
                c.barrier();
            }
            return null;
        });
    }

    @Test
    void aRankThatNeverCallsFailsTheOthersWithinTheTimeout() throws Exception {
        List<Communicator> group = form(3, SHORT_TIMEOUT);
        List<Throwable> thrown = assertTimeoutPreemptively(SHORT_TIMEOUT.multipliedBy(2),
                () -> outcomes(group, c -> {
                    if (c.rank() != 1) {
                        c.allReduceSum(all(new float[768]));
                    }
                    return null;
                }));
        assertInstanceOf(CollectiveException.class, thrown.get(0));
        assertNull(thrown.get(1));
        assertInstanceOf(CollectiveException.class, thrown.get(2));
        assertThrows(CollectiveException.class, () -> group.get(0).barrier(), "a failed group stays failed");
    }

    @Test
    void closingOneRankFailsTheOthersAtOnceNotAfterTheTimeout() throws Exception {
        List<Communicator> group = form(3, TIMEOUT);
        List<Throwable> thrown = assertTimeoutPreemptively(Duration.ofSeconds(3), () -> outcomes(group, c -> {
            if (c.rank() == 1) {
                Thread.sleep(200);
                c.close();
            } else {
                c.allReduceSum(all(new float[100_000]));
            }
            return null;
        }));
        assertInstanceOf(CollectiveException.class, thrown.get(0));
        assertInstanceOf(CollectiveException.class, thrown.get(2));
        for (Communicator c : group) {
            assertThrows(CollectiveException.class, () -> c.allReduceSum(all(new float[1])));
            c.close(); // idempotent
        }
    }

    @Test
    void ranksThatDisagreeOnTheOperationFail() throws Exception {
        List<Communicator> group = form(2, SHORT_TIMEOUT);
        List<Throwable> thrown = assertTimeoutPreemptively(SHORT_TIMEOUT.multipliedBy(2), () -> outcomes(group, c -> {
            float[] v = new float[10];
            if (c.rank() == 0) {
                c.allReduceSum(all(v));
            } else {
                c.allGather(floats(v, 0, 5), all(new float[10]));
            }
            return null;
        }));
        assertInstanceOf(CollectiveException.class, thrown.get(0));
        assertInstanceOf(CollectiveException.class, thrown.get(1));
    }

    @Test
    void badArgumentsFailTheCallerOnlyAndLeaveTheGroupUsable() throws Exception {
        List<Communicator> group = form(2, TIMEOUT);
        Communicator c = group.get(0);
        assertThrows(IllegalArgumentException.class, () -> c.allReduceSum(MemorySegment.ofArray(new byte[6])));
        assertThrows(IllegalArgumentException.class, () -> c.allReduceSum(all(new float[4]).asReadOnly()));
        assertThrows(IllegalArgumentException.class, () -> c.allGather(all(new float[3]), all(new float[5])));
        checkAllReduce(group, 7);
    }

    @Test
    void aGroupOfOneIsItsOwnResult() throws Exception {
        Communicator c = form(1, TIMEOUT).getFirst();
        assertEquals(0, c.rank());
        assertEquals(1, c.size());
        float[] v = {1, 2, 3};
        c.allReduceSum(all(v));
        c.barrier();
        float[] recv = new float[4];
        c.allGather(floats(v, 1, 2), floats(recv, 1, 2));
        assertArrayEquals(new float[] {0, 2, 3, 0}, recv);
        assertArrayEquals(new float[] {1, 2, 3}, v);
        c.close();
        assertThrows(CollectiveException.class, c::barrier);
    }
}
