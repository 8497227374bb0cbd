package io.flover.coordinator;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flover.kernels.cpu.CpuBackend;
import io.flover.kernels.cpu.CpuKernels;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.flover.worker.GroupLostException;
import io.flover.worker.LoadedModel;
import io.flover.worker.ShardExecutor;
import io.flover.worker.Step;
import io.flover.worker.StepResult;
import io.flover.worker.StepRunner;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Data-parallel replicas: requests spread by load, and a lost group's requests, running or waiting, resume on
 * another group with exactly the tokens they would have had (none repeated, none missing), or end UNAVAILABLE when
 * no group is left.
 */
class ReplicasTest {
    private static final SchedulerConfig CONFIG = SchedulerConfig.defaults(new Policy.Fusion());
    private static CpuKernels kernels;
    private static LoadedModel model;

    @BeforeAll
    static void open() throws Exception {
        kernels = new CpuKernels(2);
        model = LoadedModel.open(SchedulerTest.golden("llama-tiny-f32"), new CpuBackend(kernels));
    }

    @AfterAll
    static void close() {
        model.close();
        kernels.close();
    }

    /** An in-process shard that is lost at its {@code failAt}-th step, and runs no step before {@code open}. */
    private static class Fragile implements StepRunner {
        final ShardExecutor shard = new ShardExecutor(model.lm(), 64, CONFIG.blockSize(), 64);
        final AtomicInteger steps = new AtomicInteger();
        final int failAt;
        final AtomicBoolean closed = new AtomicBoolean();
        final CountDownLatch open = new CountDownLatch(1);

        Fragile(int failAt) {
            this.failAt = failAt;
        }

        /** Lets steps run: tests open it once every request is in, so none meets a group that is already lost. */
        Fragile opened() {
            open.countDown();
            return this;
        }

        @Override
        public StepResult run(Step step) {
            try {
                open.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            if (steps.incrementAndGet() == failAt) {
                throw new GroupLostException("worker killed at step " + failAt, null);
            }
            return shard.run(step);
        }

        @Override
        public void reset() {
            shard.reset();
        }

        @Override
        public void close() {
            closed.set(true);
        }
    }

    @Test
    void requestsOfALostGroupFinishOnAnotherWithTheirGoldenTokens() throws Exception {
        List<SchedulerTest.Golden> golden = SchedulerTest.cases("llama-tiny-f32");
        try (Replicas replicas = new Replicas(model.config(), null, ServingMetrics.none())) {
            Fragile doomed = new Fragile(6);
            Fragile survivor = new Fragile(-1);
            Scheduler first = replicas.add(doomed, 64, CONFIG);
            replicas.add(survivor, 64, CONFIG);
            List<SchedulerTest.Collector> out = new ArrayList<>();
            int n = 12;
            for (int i = 0; i < n; i++) {
                SchedulerTest.Collector c = new SchedulerTest.Collector();
                replicas.submit(GenerationRequest.greedy(golden.get(i % golden.size()).prompt(), 24).withIgnoreEos(), c);
                out.add(c);
            }
            doomed.opened();
            survivor.opened();
            for (int i = 0; i < n; i++) {
                GenerationListener.Outcome o = out.get(i).await();
                assertEquals(FinishReason.LENGTH, o.reason(), "request " + i + ": " + o.error());
                assertArrayEquals(golden.get(i % golden.size()).greedy(), out.get(i).tokens(), "request " + i);
            }
            assertTrue(doomed.steps.get() >= 6, "the first group ran until it was lost");
            for (long deadline = System.nanoTime() + 5_000_000_000L; !doomed.closed.get() && System.nanoTime() < deadline; ) {
                Thread.sleep(1);
            }
            assertTrue(doomed.closed.get(), "a lost group's runner is closed");
            assertEquals(1, replicas.size());
            assertThrows(IllegalStateException.class, () -> first.submit(GenerationRequest.greedy(new int[] {1}, 1),
                    new SchedulerTest.Collector()));
            SchedulerTest.Collector after = new SchedulerTest.Collector();
            replicas.submit(GenerationRequest.greedy(golden.getFirst().prompt(), 3).withIgnoreEos(), after);
            assertArrayEquals(Arrays.copyOf(golden.getFirst().greedy(), 3), awaitTokens(after));
            io.flover.server.ServerTesting.assertIdleWithin(replicas, 5_000); // the last step publishes after its outcomes
        }
    }

    @Test
    void withNoGroupLeftRequestsEndUnavailableAndNewOnesAreRefused() throws Exception {
        List<SchedulerTest.Golden> golden = SchedulerTest.cases("llama-tiny-f32");
        try (Replicas replicas = new Replicas(model.config(), null, ServingMetrics.none())) {
            Fragile doomed = new Fragile(4);
            replicas.add(doomed, 64, CONFIG);
            List<SchedulerTest.Collector> out = new ArrayList<>();
            for (int i = 0; i < 4; i++) {
                SchedulerTest.Collector c = new SchedulerTest.Collector();
                replicas.submit(GenerationRequest.greedy(golden.get(i % golden.size()).prompt(), 24).withIgnoreEos(), c);
                out.add(c);
            }
            doomed.opened();
            for (SchedulerTest.Collector c : out) {
                GenerationListener.Outcome o = c.await();
                assertEquals(FinishReason.UNAVAILABLE, o.reason());
                assertTrue(o.error().contains("no worker group"), o.error());
            }
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> replicas.submit(
                    GenerationRequest.greedy(new int[] {1}, 1), new SchedulerTest.Collector()));
            assertTrue(e.getMessage().contains("no worker group is ready"), e.getMessage());
        }
    }

    @Test
    void aRequestThatKeepsLosingGroupsIsNotResumedForever() throws Exception {
        try (Replicas replicas = new Replicas(model.config(), null, ServingMetrics.none())) {
            for (int i = 0; i <= Replicas.MAX_RESUMES + 1; i++) {
                replicas.add(new Fragile(1).opened(), 64, CONFIG);
            }
            SchedulerTest.Collector c = new SchedulerTest.Collector();
            replicas.submit(GenerationRequest.greedy(new int[] {1, 2, 3}, 4), c);
            GenerationListener.Outcome o = c.await();
            assertEquals(FinishReason.UNAVAILABLE, o.reason());
            assertTrue(o.error().contains("not resuming it again"), o.error());
            assertEquals(1, replicas.size(), "one group was never tried");
        }
    }

    @Test
    void aBurstOfRequestsSpreadsOverTheReplicas() throws Exception {
        CountDownLatch release = new CountDownLatch(1);
        StepRunner held = new Fragile(-1) {
            @Override
            public StepResult run(Step step) {
                try {
                    release.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                return super.run(step);
            }
        }.opened();
        try (Replicas replicas = new Replicas(model.config(), null, ServingMetrics.none())) {
            Scheduler a = replicas.add(held, 64, CONFIG);
            Scheduler b = replicas.add(new Fragile(-1) {
                @Override
                public StepResult run(Step step) {
                    try {
                        release.await();
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                    return super.run(step);
                }
            }.opened(), 64, CONFIG);
            List<SchedulerTest.Collector> out = new ArrayList<>();
            for (int i = 0; i < 10; i++) {
                SchedulerTest.Collector c = new SchedulerTest.Collector();
                replicas.submit(GenerationRequest.greedy(new int[] {1, 2, 3}, 2), c);
                out.add(c);
            }
            for (long deadline = System.nanoTime() + 5_000_000_000L; a.load() + b.load() != 10
                    && System.nanoTime() < deadline; ) {
                Thread.sleep(1);
            }
            assertEquals(10, a.load() + b.load());
            assertTrue(Math.abs(a.load() - b.load()) <= 2, "loads " + a.load() + " and " + b.load());
            release.countDown();
            for (SchedulerTest.Collector c : out) {
                assertEquals(FinishReason.LENGTH, c.await().reason());
            }
        }
    }

    @Test
    void gaugesFollowTheLiveState() throws Exception {
        SimpleMeterRegistry registry = new SimpleMeterRegistry();
        try (Replicas replicas = new Replicas(model.config(), null, new ServingMetrics(registry))) {
            Fragile gated = new Fragile(-1);
            replicas.add(gated, 64, CONFIG);
            SchedulerTest.Collector c = new SchedulerTest.Collector();
            replicas.submit(GenerationRequest.greedy(new int[] {1, 2, 3}, 20), c);
            for (long deadline = System.nanoTime() + 5_000_000_000L; gauge(registry, "flover.num.requests.running") < 1
                    && System.nanoTime() < deadline; ) {
                Thread.sleep(1); // admitted into a step that waits for the gate
            }
            assertEquals(1, gauge(registry, "flover.num.requests.running"));
            assertEquals(1, gauge(registry, "flover.num.groups"));
            assertEquals(1 / 64.0, gauge(registry, "flover.kv.cache.usage.ratio"), 1e-9, "one block of 64");
            gated.opened();
            c.await();
            io.flover.server.ServerTesting.assertIdleWithin(replicas, 5_000);
            assertEquals(0, gauge(registry, "flover.num.requests.running"));
            assertEquals(0, gauge(registry, "flover.kv.cache.usage.ratio"));
            assertEquals(20, registry.get("flover.generation.tokens").counter().count());
            assertEquals(19, registry.get("flover.inter.token.latency").timer().count());
            assertEquals(1, registry.get("flover.requests.finished").tag("reason", "length").counter().count());
        }
    }

    private static double gauge(SimpleMeterRegistry registry, String name) {
        return registry.get(name).gauge().value();
    }

    private static int[] awaitTokens(SchedulerTest.Collector c) throws Exception {
        c.await();
        return c.tokens();
    }
}
