package io.flover.coordinator;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.flover.kernels.cpu.CpuBackend;
import io.flover.kernels.cpu.CpuKernels;
import io.flover.worker.LoadedModel;
import io.flover.worker.SamplingParams;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The correctness rule under fusion: whatever the policy, the interleaving, cancellations of others and
 * preemptions, every greedy request yields exactly the tokens it yields alone; and the KV pool is whole after.
 */
class SchedulerTest {
    static CpuKernels kernels;
    static final Map<String, LoadedModel> models = new HashMap<>();

    @BeforeAll
    static void open() throws Exception {
        kernels = new CpuKernels(2);
        for (String name : List.of("llama-tiny-f32", "gpt2-tiny-f32", "llama-tiny-bf16", "gpt2-tiny-bf16")) {
            models.put(name, LoadedModel.open(golden(name), new CpuBackend(kernels)));
        }
    }

    @AfterAll
    static void close() {
        models.values().forEach(LoadedModel::close);
        kernels.close();
    }

    static Path golden(String name) throws Exception {
        return Path.of(SchedulerTest.class.getResource("/golden/" + name + "/config.json").toURI()).getParent();
    }

    /** A request's collected output. */
    static final class Collector implements GenerationListener {
        final List<Integer> ids = new ArrayList<>();
        /** Each delivery of the prompt's log-probabilities. */
        final List<io.flover.worker.TokenLogprobs[]> promptLogprobs = new ArrayList<>();
        final CompletableFuture<Outcome> done = new CompletableFuture<>();

        @Override
        public void onPromptLogprobs(io.flover.worker.TokenLogprobs[] logprobs) {
            promptLogprobs.add(logprobs);
        }

        @Override
        public void onTokens(int[] tokens, String text, io.flover.worker.TokenLogprobs[] logprobs) {
            for (int t : tokens) {
                ids.add(t);
            }
        }

        @Override
        public void onFinished(Outcome outcome) {
            done.complete(outcome);
        }

        Outcome await() throws Exception {
            return done.get(60, TimeUnit.SECONDS);
        }

        int[] tokens() {
            return ids.stream().mapToInt(Integer::intValue).toArray();
        }
    }

    record Golden(int[] prompt, int[] greedy) {
    }

    static List<Golden> cases(String name) throws Exception {
        List<Golden> out = new ArrayList<>();
        for (JsonNode c : new ObjectMapper().readTree(golden(name).resolve("expected.json").toFile()).get("cases")) {
            out.add(new Golden(new ObjectMapper().treeToValue(c.get("prompt_ids"), int[].class),
                    new ObjectMapper().treeToValue(c.get("greedy_ids"), int[].class)));
        }
        return out;
    }

    static Stream<Object[]> modelsAndPolicies() {
        List<Object[]> all = new ArrayList<>();
        for (String m : List.of("llama-tiny-f32", "gpt2-tiny-f32", "llama-tiny-bf16", "gpt2-tiny-bf16")) {
            for (String p : List.of("fusion", "fusion-no-reorder", "dynamic-batching", "sequential")) {
                all.add(new Object[] {m, p});
            }
        }
        return all.stream();
    }

    /**
     * 64 requests over the golden prompts and prefixes of them, with max_tokens from 1 to 24, arriving in waves
     * while others decode, every seventh cancelled midway: each uncancelled greedy one yields the golden greedy ids
     * (or, for a prefix prompt, what the single-request generator yields alone), cut at its max_tokens. Every sixth
     * samples with a seed instead, so steps mix rows that need their logits with rows that need only their argmax;
     * it yields what it yields alone.
     */
    @ParameterizedTest
    @MethodSource("modelsAndPolicies")
    void fusedRequestsYieldWhatTheyYieldAlone(String model, String policy) throws Exception {
        LoadedModel m = models.get(model);
        List<Golden> golden = cases(model);
        SplittableRandom rnd = new SplittableRandom(model.hashCode() ^ policy.hashCode());
        Generator alone = new Generator(m.lm(), null);
        int n = 64;
        int[][] prompts = new int[n][];
        int[][] expected = new int[n][];
        GenerationRequest[] requests = new GenerationRequest[n];
        for (int i = 0; i < n; i++) {
            Golden g = golden.get(i % golden.size());
            int max = 1 + rnd.nextInt(24);
            if (i % 6 == 5) { // sampled, hot enough to leave the tiny models' peaked logits: compare with a run alone
                prompts[i] = g.prompt;
                requests[i] = new GenerationRequest(prompts[i], max, new SamplingParams(10f, 0, 1, 0, 1, i),
                        List.of(), Set.of(), true);
                expected[i] = alone.generate(requests[i], d -> { }).tokenIds();
                continue;
            }
            if (i % 5 == 4 && g.prompt.length > 2) { // a prefix of a golden prompt: compare with a run alone
                prompts[i] = Arrays.copyOf(g.prompt, 1 + rnd.nextInt(g.prompt.length - 1));
                expected[i] = alone.generate(GenerationRequest.greedy(prompts[i], max).withIgnoreEos(), d -> { }).tokenIds();
            } else {
                prompts[i] = g.prompt;
                expected[i] = Arrays.copyOf(g.greedy, max);
            }
            requests[i] = GenerationRequest.greedy(prompts[i], expected[i].length).withIgnoreEos();
        }
        boolean sampledSomethingElse = false;
        for (int i = 5; i < n; i += 6) {
            int[] greedy = golden.get(i % golden.size()).greedy;
            sampledSomethingElse |= !Arrays.equals(expected[i], Arrays.copyOf(greedy, expected[i].length));
        }
        assertTrue(sampledSomethingElse, "the sampled requests chose only greedy tokens: they test nothing");
        boolean reorder = !policy.endsWith("-no-reorder");
        SchedulerConfig config = new SchedulerConfig(Policy.parse(policy.replace("-no-reorder", ""), 8,
                Duration.ofMillis(5)), 16, 48, 256, reorder);
        try (Scheduler scheduler = EmbeddedEngine.start(m.lm(), null, 64, config)) {
            Collector[] out = new Collector[n];
            Scheduler.Handle[] handles = new Scheduler.Handle[n];
            for (int i = 0; i < n; i++) {
                out[i] = new Collector();
                handles[i] = scheduler.submit(requests[i], out[i]);
                if (i % 16 == 15) {
                    Thread.sleep(5); // later waves arrive while earlier requests decode
                }
                if (i % 7 == 3) {
                    handles[i].cancel();
                }
            }
            for (int i = 0; i < n; i++) {
                GenerationListener.Outcome o = out[i].await();
                if (i % 7 == 3) {
                    assertTrue(o.reason() == FinishReason.CANCELLED || o.reason() == FinishReason.LENGTH, "request " + i);
                    int[] got = out[i].tokens();
                    assertArrayEquals(Arrays.copyOf(expected[i], got.length), got, "a cancelled request's tokens so far");
                } else {
                    assertEquals(FinishReason.LENGTH, o.reason(), "request " + i);
                    assertArrayEquals(expected[i], out[i].tokens(), model + " " + policy + " request " + i);
                }
            }
            assertPoolWhole(scheduler);
            if (!reorder) {
                assertEquals(0, scheduler.stats().slotMoves(), "without reordering no slot moves");
            }
        }
    }

    /**
     * With room for about two sequences, sequences are preempted and recomputed, and all finish correctly; each
     * gets its prompt's log-probabilities once, though its prompt was computed again, and the same figures as the
     * others. (Within float rounding rather than bit for bit: the vector kernels' sums round differently before
     * the JIT compiles them, whatever the batch.)
     */
    @Test
    void preemptionUnderATinyKvBudgetKeepsResultsExact() throws Exception {
        LoadedModel m = models.get("llama-tiny-f32");
        List<Golden> golden = cases("llama-tiny-f32");
        Golden longest = golden.get(2); // 33-token prompt + 24 = 57 positions = 4 blocks
        SchedulerConfig config = new SchedulerConfig(new Policy.Fusion(), 8, 64, 64);
        SamplingParams scoring = new SamplingParams(0, 0, 1, 0, 1, 0, 0, 0, new int[0], -1, 2, 0);
        try (Scheduler scheduler = EmbeddedEngine.start(m.lm(), null, 7, config)) {
            List<Collector> out = new ArrayList<>();
            for (int i = 0; i < 6; i++) {
                Collector c = new Collector();
                scheduler.submit(new GenerationRequest(longest.prompt, 24, scoring, List.of(), Set.of(), true), c);
                out.add(c);
            }
            for (Collector c : out) {
                assertEquals(FinishReason.LENGTH, c.await().reason());
                assertArrayEquals(longest.greedy, c.tokens());
                assertEquals(1, c.promptLogprobs.size(), "delivered once");
                io.flover.worker.TokenLogprobs[] mine = c.promptLogprobs.getFirst();
                io.flover.worker.TokenLogprobs[] first = out.getFirst().promptLogprobs.getFirst();
                assertEquals(longest.prompt.length, mine.length);
                for (int i = 1; i < mine.length; i++) {
                    assertEquals(first[i].logprob(), mine[i].logprob(), "token " + i);
                    assertArrayEquals(first[i].topIds(), mine[i].topIds(), "token " + i);
                    assertEquals(2, mine[i].topIds().length);
                }
            }
            assertTrue(scheduler.stats().preemptions() > 0, "no preemption happened: " + scheduler.stats());
            assertPoolWhole(scheduler);
        }
    }

    /** Sequences of different lengths leave at different steps: the last slot moves into each hole. */
    @Test
    void finishedSequencesLeaveAndTheBatchIsReordered() throws Exception {
        LoadedModel m = models.get("gpt2-tiny-f32");
        Golden g = cases("gpt2-tiny-f32").get(1);
        try (Scheduler scheduler = EmbeddedEngine.start(m.lm(), null, 64, SchedulerConfig.defaults(new Policy.Fusion()))) {
            List<Collector> out = new ArrayList<>();
            for (int max : new int[] {3, 20, 5, 24, 1, 12}) {
                Collector c = new Collector();
                scheduler.submit(GenerationRequest.greedy(g.prompt, max).withIgnoreEos(), c);
                out.add(c);
            }
            int[] maxes = {3, 20, 5, 24, 1, 12};
            for (int i = 0; i < out.size(); i++) {
                out.get(i).await();
                assertArrayEquals(Arrays.copyOf(g.greedy, maxes[i]), out.get(i).tokens());
            }
            assertTrue(scheduler.stats().slotMoves() > 0, "no slot moved: " + scheduler.stats());
            assertPoolWhole(scheduler);
        }
    }

    @Test
    void cancellingFreesBlocksAndEndsTheStream() throws Exception {
        LoadedModel m = models.get("llama-tiny-f32");
        try (Scheduler scheduler = EmbeddedEngine.start(m.lm(), null, 64, SchedulerConfig.defaults(new Policy.Fusion()))) {
            Collector c = new Collector();
            Scheduler.Handle h = scheduler.submit(GenerationRequest.greedy(new int[] {5, 6, 7}, 200).withIgnoreEos(), c);
            while (c.ids.size() < 3) {
                Thread.sleep(1);
            }
            h.cancel();
            assertEquals(FinishReason.CANCELLED, c.await().reason());
            assertTrue(c.ids.size() < 200);
            assertPoolWhole(scheduler);
        }
    }

    @Test
    void aFullQueueRefusesNewRequests() throws Exception {
        LoadedModel m = models.get("llama-tiny-f32");
        // dynamic batching with a long delay and a batch of 4 keeps the first 3 requests waiting
        SchedulerConfig config = new SchedulerConfig(new Policy.DynamicBatching(4, Duration.ofMinutes(1)), 4, 64, 3);
        try (Scheduler scheduler = EmbeddedEngine.start(m.lm(), null, 64, config)) {
            List<Scheduler.Handle> handles = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                handles.add(scheduler.submit(GenerationRequest.greedy(new int[] {9}, 4), new Collector()));
            }
            assertThrows(Scheduler.QueueFullException.class,
                    () -> scheduler.submit(GenerationRequest.greedy(new int[] {9}, 4), new Collector()));
            handles.forEach(Scheduler.Handle::cancel);
        }
    }

    @Test
    void requestsThatCannotFitAreRefusedNamingTheField() {
        LoadedModel m = models.get("llama-tiny-f32");
        try (Scheduler scheduler = EmbeddedEngine.start(m.lm(), null, 4, SchedulerConfig.defaults(new Policy.Fusion()))) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> scheduler.submit(GenerationRequest.greedy(new int[] {9}, 100), new Collector()));
            assertTrue(e.getMessage().contains("max_tokens") && e.getMessage().contains("KV cache"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> scheduler.submit(GenerationRequest.greedy(new int[0], 4), new Collector()));
            assertTrue(e.getMessage().contains("prompt"), e.getMessage());
        }
    }

    /** A checkpoint whose vocabulary outgrows its tokenizer: padded ids produce no text and break nothing. */
    @Test
    void idsBeyondTheTokenizerProduceNoTextAndTheSchedulerGoesOn(@org.junit.jupiter.api.io.TempDir Path dir)
            throws Exception {
        io.flover.model.RandomCheckpoint.write(dir, io.flover.model.Architecture.LLAMA,
                io.flover.model.RandomCheckpoint.Preset.TINY, io.flover.model.DType.F32, 2, x -> { });
        io.flover.model.tokenizer.ByteLevelTokenizerWriter.write(dir, 300); // the model has 2048 ids
        try (LoadedModel m = LoadedModel.open(dir, new CpuBackend(kernels));
             Scheduler scheduler = EmbeddedEngine.start(m.lm(), io.flover.model.tokenizer.Tokenizer.load(dir), 64,
                     SchedulerConfig.defaults(new Policy.Fusion()))) {
            for (int round = 0; round < 2; round++) {
                Collector c = new Collector();
                scheduler.submit(GenerationRequest.greedy(new int[] {5, 6}, 32).withIgnoreEos(), c);
                assertEquals(FinishReason.LENGTH, c.await().reason());
                assertEquals(32, c.ids.size());
            }
            assertPoolWhole(scheduler);
        }
    }

    @Test
    void aClosedSchedulerRefusesRequests() {
        Scheduler scheduler = EmbeddedEngine.start(models.get("llama-tiny-f32").lm(), null, 8,
                SchedulerConfig.defaults(new Policy.Fusion()));
        scheduler.close();
        assertThrows(IllegalStateException.class,
                () -> scheduler.submit(GenerationRequest.greedy(new int[] {9}, 4), new Collector()));
        assertEquals(0, scheduler.stats().waiting());
    }

    static void assertPoolWhole(Scheduler scheduler) throws InterruptedException {
        // the stats are published after the step in which the last request finished
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (scheduler.stats().running() > 0 && System.nanoTime() < deadline) {
            Thread.sleep(1);
        }
        Scheduler.Stats s = scheduler.stats();
        assertEquals(0, s.running(), s.toString());
        assertEquals(s.totalBlocks(), s.freeBlocks(), "KV blocks leaked: " + s);
    }
}
