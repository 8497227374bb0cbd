package io.flover.worker;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.flover.kernels.cpu.CpuBackend;
import io.flover.kernels.cpu.CpuKernels;
import io.flover.kernels.Backend;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
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
        // The .gguf files are the same checkpoints written by gguf-py as llama.cpp's converter writes them
        // (golden/to_gguf.py); the Q8_0 ones have their own references, over the weights gguf-py dequantises.
        return Stream.of("llama-tiny-f32", "llama-tiny-bf16", "gpt2-tiny-f32", "gpt2-tiny-bf16",
                "llama-alt-f16", "gpt2-alt-f16", "llama-tiny-f32.gguf", "llama-tiny-bf16.gguf", "llama-alt-f16.gguf",
                "gpt2-tiny-f32.gguf", "gpt2-tiny-bf16.gguf", "llama-tiny-q8_0.gguf", "gpt2-tiny-q8_0.gguf");
    }

    /** The model path: a checkpoint directory, or a GGUF file. */
    static Path dir(String name) throws URISyntaxException {
        if (name.endsWith(".gguf")) {
            return Path.of(GoldenModelTest.class.getResource("/golden/gguf/" + name).toURI());
        }
        return Path.of(GoldenModelTest.class.getResource("/golden/" + name + "/config.json").toURI()).getParent();
    }

    static List<Case> cases(String name) throws IOException, URISyntaxException {
        Path expected;
        if (name.endsWith(".gguf")) {
            String base = name.substring(0, name.length() - ".gguf".length());
            Path own = dir(name).resolveSibling(base + ".expected.json");
            expected = Files.exists(own) ? own : dir(base).resolve("expected.json");
        } else {
            expected = dir(name).resolve("expected.json");
        }
        JsonNode root = new ObjectMapper().readTree(expected.toFile());
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

    /** The backend under test; closed after each model. */
    Backend backend() {
        return new CpuBackend(kernels);
    }

    double logitTolerance() {
        return LOGIT_TOLERANCE;
    }

    @ParameterizedTest
    @MethodSource("checkpoints")
    void eachPromptAloneMatchesReference(String name) throws Exception {
        try (Backend backend = backend(); LoadedModel m = LoadedModel.open(dir(name), backend)) {
            for (Case c : cases(name)) {
                Greedy alone = greedyFused(m, List.of(c.prompt), Math.max(1, c.greedy.length), c.prompt.length);
                assertClose(c.lastLogits, alone.firstLogits[0], name + " prompt of " + c.prompt.length);
                assertArrayEquals(c.greedy, Arrays.copyOf(alone.ids[0], c.greedy.length),
                        name + " greedy ids for a prompt of " + c.prompt.length);
            }
        }
    }

    /** All prompts prefilled in one fused step, in chunks of 5 tokens, then all decoding together. */
    @ParameterizedTest
    @MethodSource("checkpoints")
    void fusedChunkedStepsMatchReference(String name) throws Exception {
        List<Case> cases = cases(name);
        int steps = Math.max(1, cases.stream().mapToInt(c -> c.greedy.length).max().orElseThrow());
        try (Backend backend = backend(); LoadedModel m = LoadedModel.open(dir(name), backend)) {
            Greedy fused = greedyFused(m, cases.stream().map(Case::prompt).toList(), steps, 5);
            for (int s = 0; s < cases.size(); s++) {
                Case c = cases.get(s);
                assertClose(c.lastLogits, fused.firstLogits[s], name + " fused prompt " + s);
                assertArrayEquals(c.greedy, Arrays.copyOf(fused.ids[s], c.greedy.length),
                        name + " fused greedy ids of sequence " + s);
            }
        }
    }

    /**
     * Each sequence's greedy ids, its logits at the last prompt position, and for each id how far its logit was
     * above the runner-up's: where two runs part, a gap near zero says rounding chose, not a bug.
     */
    record Greedy(int[][] ids, float[][] firstLogits, float[][] gaps) {
    }

    /**
     * Greedy decoding of {@code steps} tokens for every prompt, all in the same fused steps: prompts prefilled in
     * chunks of up to {@code chunk} tokens beside the others' decode tokens, KV blocks interleaved across sequences.
     */
    static Greedy greedyFused(LoadedModel m, List<int[]> prompts, int steps, int chunk) {
        int n = prompts.size();
        int longest = prompts.stream().mapToInt(p -> p.length).max().orElseThrow();
        int blocksEach = (longest + steps + BLOCK_SIZE - 1) / BLOCK_SIZE;
        int[][] tables = new int[n][blocksEach];
        for (int s = 0; s < n; s++) {
            for (int b = 0; b < blocksEach; b++) {
                tables[s][b] = b * n + s; // interleaved, so sequences share no block by construction only
            }
        }
        int vocab = m.config().vocabSize();
        int[] done = new int[n];
        int[][] generated = new int[n][steps];
        float[][] firstLogits = new float[n][];
        float[][] gaps = new float[n][steps];
        int[] produced = new int[n];
        try (Backend.KvCache kv = m.lm().newKvCache(blocksEach * n, BLOCK_SIZE)) {
            while (Arrays.stream(produced).anyMatch(p -> p < steps)) {
                List<int[]> pieces = new ArrayList<>();
                List<Integer> seqs = new ArrayList<>();
                List<Integer> firsts = new ArrayList<>();
                List<Boolean> wants = new ArrayList<>();
                for (int s = 0; s < n; s++) {
                    int[] prompt = prompts.get(s);
                    if (produced[s] == steps) {
                        continue;
                    }
                    if (done[s] < prompt.length) {
                        int len = Math.min(chunk, prompt.length - done[s]);
                        pieces.add(Arrays.copyOfRange(prompt, done[s], done[s] + len));
                        firsts.add(done[s]);
                        done[s] += len;
                        wants.add(done[s] == prompt.length);
                    } else {
                        pieces.add(new int[] {generated[s][produced[s] - 1]});
                        firsts.add(prompt.length + produced[s] - 1);
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
                LogitRows logits = m.lm().forward(new StepBatch(tokens, starts, lengths, firstPos, seqTables, want), kv,
                        true);
                for (int i = 0, row = 0; i < k; i++) {
                    if (want[i]) {
                        int s = seqs.get(i);
                        if (produced[s] == 0) {
                            firstLogits[s] = Arrays.copyOfRange(logits.rows(), row * vocab, (row + 1) * vocab);
                        }
                        // The backend's argmax, where the logits are, is the argmax of the rows it hands back: on a
                        // GPU (CudaGoldenModelTest) the argmax_rows kernel against the CPU's loop.
                        int next = logits.argmax()[row];
                        assertEquals(CpuKernels.argmax(logits.rows(), row * vocab, vocab), next,
                                "argmax of row " + row);
                        gaps[s][produced[s]] = gapToRunnerUp(logits.rows(), row * vocab, vocab, next);
                        generated[s][produced[s]++] = next;
                        row++;
                    }
                }
            }
        }
        return new Greedy(generated, firstLogits, gaps);
    }

    private static float gapToRunnerUp(float[] logits, int offset, int vocab, int best) {
        float second = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < vocab; i++) {
            if (i != best) {
                second = Math.max(second, logits[offset + i]);
            }
        }
        return logits[offset + best] - second;
    }

    private void assertClose(float[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what + ": logit count");
        double worst = 0;
        for (int i = 0; i < expected.length; i++) {
            worst = Math.max(worst, Math.abs(expected[i] - actual[i]));
        }
        assertTrue(worst <= logitTolerance(), what + ": max |logit error| " + worst + " > " + logitTolerance());
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
