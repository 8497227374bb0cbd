package io.flover.worker;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.flover.kernels.cpu.CpuKernels;
import io.flover.kernels.cpu.KvCache;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The forward of each architecture against numbers from an independent float64 implementation
 * ({@code src/test/resources/golden}, see its README): logits at the last prompt position within 1e-4 and
 * 24 greedy tokens identical, for float32 and bfloat16 weights; and the same numbers however a step is cut
 * (all prompts fused into one step, prompts prefilled in chunks, decode steps fused across sequences).
 */
class GoldenModelTest {
    private static final double LOGIT_TOLERANCE = 1e-4;
    /**
     * Below this top-1 margin a greedy step may flip on float32 rounding alone, so ids are compared up to the first
     * such step (all of them for the shared fixtures, whose smallest margin is 0.016).
     */
    private static final double DECISIVE_MARGIN = 1e-3;
    private static final int BLOCK_SIZE = 16;
    private static CpuKernels kernels;

    /** {@code greedy} holds only the decisive prefix of the reference continuation. */
    record Case(int[] prompt, float[] lastLogits, int[] greedy) {
    }

    @BeforeAll
    static void startKernels() {
        kernels = new CpuKernels(2);
    }

    @AfterAll
    static void stopKernels() {
        kernels.close();
    }

    static Stream<String> checkpoints() {
        // The "alt" fixtures (golden.py --alt) add float16 weights, 8 query heads on 2 KV heads, RoPE theta 5e5.
        return Stream.of("llama-tiny-f32", "llama-tiny-bf16", "gpt2-tiny-f32", "gpt2-tiny-bf16",
                "llama-alt-f16", "gpt2-alt-f16");
    }

    static Path dir(String name) throws URISyntaxException {
        return Path.of(GoldenModelTest.class.getResource("/golden/" + name + "/config.json").toURI()).getParent();
    }

    static List<Case> cases(String name) throws IOException, URISyntaxException {
        JsonNode root = new ObjectMapper().readTree(dir(name).resolve("expected.json").toFile());
        List<Case> cases = new ArrayList<>();
        for (JsonNode c : root.get("cases")) {
            int[] greedy = ints(c.get("greedy_ids"));
            float[] margins = floats(c.get("greedy_top1_margin"));
            int decisive = 0;
            while (decisive < greedy.length && margins[decisive] >= DECISIVE_MARGIN) {
                decisive++;
            }
            cases.add(new Case(ints(c.get("prompt_ids")), floats(c.get("last_logits")), Arrays.copyOf(greedy, decisive)));
        }
        return cases;
    }

    @ParameterizedTest
    @MethodSource("checkpoints")
    void eachPromptAloneMatchesReference(String name) throws Exception {
        try (LoadedModel m = LoadedModel.open(dir(name), kernels)) {
            for (Case c : cases(name)) {
                KvCache kv = m.lm().newKvCache(blocksFor(c), BLOCK_SIZE);
                int[] table = identityTable(blocksFor(c));
                float[] logits = m.lm().forward(StepBatch.single(c.prompt, 0, table), kv);
                assertClose(c.lastLogits, logits, name + " prompt of " + c.prompt.length);
                int[] generated = new int[c.greedy.length];
                int position = c.prompt.length;
                for (int i = 0; i < generated.length; i++) {
                    generated[i] = Sampler.argmax(logits, 0, logits.length);
                    logits = m.lm().forward(StepBatch.single(new int[] {generated[i]}, position++, table), kv);
                }
                assertArrayEquals(c.greedy, generated, name + " greedy ids for a prompt of " + c.prompt.length);
            }
        }
    }

    /** All prompts prefilled in one fused step, in chunks of 5 tokens, then all decoding together. */
    @ParameterizedTest
    @MethodSource("checkpoints")
    void fusedChunkedStepsMatchReference(String name) throws Exception {
        List<Case> cases = cases(name);
        int n = cases.size();
        try (LoadedModel m = LoadedModel.open(dir(name), kernels)) {
            int blocksEach = cases.stream().mapToInt(GoldenModelTest::blocksFor).max().orElseThrow();
            KvCache kv = m.lm().newKvCache(blocksEach * n, BLOCK_SIZE);
            int[][] tables = new int[n][blocksEach];
            for (int s = 0; s < n; s++) {
                for (int b = 0; b < blocksEach; b++) {
                    tables[s][b] = b * n + s; // interleaved, so sequences share no block by construction only
                }
            }
            int[] done = new int[n];
            int[][] generated = new int[n][];
            for (int s = 0; s < n; s++) {
                generated[s] = new int[cases.get(s).greedy.length];
            }
            int[] produced = new int[n];
            int chunk = 5;
            while (java.util.stream.IntStream.range(0, n).anyMatch(s -> produced[s] < cases.get(s).greedy.length)) {
                List<int[]> pieces = new ArrayList<>();
                List<Integer> seqs = new ArrayList<>();
                List<Integer> firsts = new ArrayList<>();
                List<Boolean> wants = new ArrayList<>();
                for (int s = 0; s < n; s++) {
                    Case c = cases.get(s);
                    if (produced[s] == c.greedy.length) {
                        continue;
                    }
                    if (done[s] < c.prompt.length) {
                        int len = Math.min(chunk, c.prompt.length - done[s]);
                        pieces.add(Arrays.copyOfRange(c.prompt, done[s], done[s] + len));
                        firsts.add(done[s]);
                        done[s] += len;
                        wants.add(done[s] == c.prompt.length);
                    } else {
                        pieces.add(new int[] {generated[s][produced[s] - 1]});
                        firsts.add(c.prompt.length + produced[s] - 1);
                        wants.add(true);
                    }
                    seqs.add(s);
                }
                int k = seqs.size();
                int[] starts = new int[k];
                int[] lengths = new int[k];
                int[] firstPos = new int[k];
                int[][] seqTables = new int[k][];
                boolean[] want = new boolean[k];
                int total = 0;
                for (int i = 0; i < k; i++) {
                    starts[i] = total;
                    lengths[i] = pieces.get(i).length;
                    total += lengths[i];
                    firstPos[i] = firsts.get(i);
                    seqTables[i] = tables[seqs.get(i)];
                    want[i] = wants.get(i);
                }
                int[] tokens = new int[total];
                for (int i = 0; i < k; i++) {
                    System.arraycopy(pieces.get(i), 0, tokens, starts[i], lengths[i]);
                }
                float[] logits = m.lm().forward(new StepBatch(tokens, starts, lengths, firstPos, seqTables, want), kv);
                int vocab = m.config().vocabSize();
                int row = 0;
                for (int i = 0; i < k; i++) {
                    if (!want[i]) {
                        continue;
                    }
                    int s = seqs.get(i);
                    if (produced[s] == 0) {
                        assertClose(cases.get(s).lastLogits, Arrays.copyOfRange(logits, row * vocab, (row + 1) * vocab),
                                name + " fused prompt " + s);
                    }
                    generated[s][produced[s]++] = Sampler.argmax(logits, row * vocab, vocab);
                    row++;
                }
            }
            for (int s = 0; s < n; s++) {
                assertArrayEquals(cases.get(s).greedy, generated[s], name + " fused greedy ids of sequence " + s);
            }
        }
    }

    private static int blocksFor(Case c) {
        return (c.prompt.length + c.greedy.length + BLOCK_SIZE - 1) / BLOCK_SIZE;
    }

    private static int[] identityTable(int n) {
        int[] t = new int[n];
        Arrays.setAll(t, i -> i);
        return t;
    }

    private static void assertClose(float[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what + ": logit count");
        double worst = 0;
        for (int i = 0; i < expected.length; i++) {
            worst = Math.max(worst, Math.abs(expected[i] - actual[i]));
        }
        assertTrue(worst <= LOGIT_TOLERANCE, what + ": max |logit error| " + worst + " > " + LOGIT_TOLERANCE);
    }

    private static int[] ints(JsonNode a) {
        int[] r = new int[a.size()];
        for (int i = 0; i < r.length; i++) {
            r[i] = a.get(i).asInt();
        }
        return r;
    }

    private static float[] floats(JsonNode a) {
        float[] r = new float[a.size()];
        for (int i = 0; i < r.length; i++) {
            r[i] = (float) a.get(i).asDouble();
        }
        return r;
    }
}
