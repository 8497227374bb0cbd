package io.flover.kernels.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.Test;

class WorkerPoolTest {

    @Test
    void everyChunkRunsExactlyOnceAcrossParkedAndSpinningHelpers() throws InterruptedException {
        try (WorkerPool pool = new WorkerPool(3, "test-pool")) {
            for (int round = 0; round < 3000; round++) {
                int chunks = 1 + round % 40;
                AtomicIntegerArray runs = new AtomicIntegerArray(chunks);
                pool.forEach(chunks, (worker, c) -> runs.incrementAndGet(c));
                for (int c = 0; c < chunks; c++) {
                    assertEquals(1, runs.get(c), "round " + round + " chunk " + c);
                }
                if (round % 500 == 0) {
                    Thread.sleep(20); // long enough for the helpers to park
                }
            }
        }
    }

    @Test
    void helpersShareTheWorkAndWorkerIndexesAreDistinct() {
        try (WorkerPool pool = new WorkerPool(3, "test-pool")) {
            Set<Thread> threads = ConcurrentHashMap.newKeySet();
            Set<Integer> workers = ConcurrentHashMap.newKeySet();
            // On a loaded 2-core machine a helper may miss many rounds, for seconds on end; the loop ends as soon as
            // all three have worked.
            long deadline = System.nanoTime() + java.util.concurrent.TimeUnit.SECONDS.toNanos(60);
            while (threads.size() < 3 && System.nanoTime() < deadline) {
                pool.forEach(64, (worker, c) -> {
                    threads.add(Thread.currentThread());
                    workers.add(worker);
                    long end = System.nanoTime() + 20_000;
                    while (System.nanoTime() < end) {
                        Thread.onSpinWait();
                    }
                });
            }
            assertEquals(3, threads.size());
            assertEquals(Set.of(0, 1, 2), workers);
        }
    }

    @Test
    void anExceptionOnAHelperSurfacesAndThePoolStaysUsable() {
        try (WorkerPool pool = new WorkerPool(2, "test-pool")) {
            IllegalStateException boom = new IllegalStateException("boom");
            for (int round = 0; round < 50; round++) {
                AtomicBoolean helperRan = new AtomicBoolean();
                // The caller holds its chunk until the helper has taken the other one, which throws.
                IllegalStateException thrown = assertThrows(IllegalStateException.class, () -> pool.forEach(2,
                        (worker, c) -> {
                            if (worker != 0) {
                                helperRan.set(true);
                                throw boom;
                            }
                            long deadline = System.nanoTime() + 5_000_000_000L;
                            while (!helperRan.get() && System.nanoTime() < deadline) {
                                Thread.onSpinWait();
                            }
                        }));
                assertSame(boom, thrown);
                AtomicIntegerArray runs = new AtomicIntegerArray(10);
                pool.forEach(10, (worker, c) -> runs.incrementAndGet(c));
                assertEquals(10, sum(runs));
                if (round % 10 == 0) {
                    sleepMicros(1_000);
                }
            }
        }
    }

    @Test
    void anExceptionOnTheCallerWaitsForTheHelpersAndSurfaces() {
        try (WorkerPool pool = new WorkerPool(3, "test-pool")) {
            AtomicIntegerArray finished = new AtomicIntegerArray(1);
            Thread caller = Thread.currentThread();
            assertThrows(ArithmeticException.class, () -> pool.forEach(30, (worker, c) -> {
                sleepMicros(300);
                if (Thread.currentThread() == caller) {
                    throw new ArithmeticException("caller");
                }
                finished.incrementAndGet(0);
            }));
            int seen = finished.get(0);
            sleepMicros(2_000);
            assertEquals(seen, finished.get(0), "a helper was still running after forEach returned");
            AtomicIntegerArray runs = new AtomicIntegerArray(5);
            pool.forEach(5, (worker, c) -> runs.incrementAndGet(c));
            assertEquals(5, sum(runs));
        }
    }

    @Test
    void closeStopsAndJoinsTheHelpers() throws InterruptedException {
        WorkerPool pool = new WorkerPool(4, "test-pool");
        pool.forEach(8, (worker, c) -> { });
        Thread.sleep(10); // some helpers parked, maybe some still spinning
        pool.close();
        for (Thread t : pool.helperThreads()) {
            assertFalse(t.isAlive(), t.getName());
        }
        pool.close();
        assertThrows(IllegalStateException.class, () -> pool.forEach(2, (worker, c) -> { }));
    }

    @Test
    void aSingleParticipantRunsEverythingOnTheCaller() {
        try (WorkerPool pool = new WorkerPool(1, "test-pool")) {
            assertTrue(pool.helperThreads().isEmpty());
            Thread caller = Thread.currentThread();
            pool.forEach(7, (worker, c) -> {
                assertEquals(0, worker);
                assertSame(caller, Thread.currentThread());
            });
        }
    }

    private static int sum(AtomicIntegerArray a) {
        int s = 0;
        for (int i = 0; i < a.length(); i++) {
            s += a.get(i);
        }
        return s;
    }

    private static void sleepMicros(long micros) {
        long end = System.nanoTime() + micros * 1_000;
        while (System.nanoTime() < end) {
            Thread.onSpinWait();
        }
    }
}
