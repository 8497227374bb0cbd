package io.flover.worker;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import io.flover.kernels.cpu.CpuBackend;
import io.flover.kernels.cpu.CpuKernels;
import io.flover.model.Checkpoint;
import io.flover.model.SafetensorsWriter;
import io.flover.model.Tensor;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Layouts of real checkpoints that the golden fixtures do not use, checked by equivalence: a rewritten
 * checkpoint that means the same model must give the same logits.
 */
class CheckpointVariantsTest {
    static CpuKernels kernels;

    @TempDir
    Path tmp;

    @BeforeAll
    static void start() {
        kernels = new CpuKernels(2);
    }

    @AfterAll
    static void stop() {
        kernels.close();
    }

    private static final int[] PROMPT = {369, 17, 250, 3, 99};

    private float[] logits(Path dir) throws Exception {
        try (LoadedModel m = LoadedModel.open(dir, new CpuBackend(kernels))) {
            return m.lm().forward(StepBatch.single(PROMPT, 0, new int[] {0}), m.lm().newKvCache(1, 16), true).rows();
        }
    }

    /** Copies a golden checkpoint, renaming or replacing tensors and editing config.json. */
    private Path rewrite(String golden, UnaryOperator<String> rename, String configFrom, String configTo,
                         Map<String, float[]> extra, Set<String> drop) throws Exception {
        Path src = GoldenModelTest.dir(golden);
        Path dst = Files.createTempDirectory(tmp, golden);
        Files.writeString(dst.resolve("config.json"), Files.readString(src.resolve("config.json")).replace(configFrom, configTo));
        try (Checkpoint ck = Checkpoint.open(src)) {
            SafetensorsWriter w = new SafetensorsWriter(ck.tensor(ck.names().iterator().next()).dtype());
            for (String name : ck.names()) {
                if (drop.contains(name)) {
                    continue;
                }
                Tensor t = ck.tensor(name);
                float[] values = extra.containsKey(name) ? extra.get(name) : t.toFloatArray();
                w.add(rename.apply(name), t.shape(), out -> System.arraycopy(values, 0, out, 0, out.length));
            }
            for (var e : extra.entrySet()) {
                if (!ck.contains(e.getKey())) {
                    float[] v = e.getValue();
                    w.add(e.getKey(), new long[] {v.length}, out -> System.arraycopy(v, 0, out, 0, out.length));
                }
            }
            w.write(dst.resolve(Checkpoint.SINGLE_FILE));
        }
        return dst;
    }

    @Test
    void gpt2WithTransformerPrefixIsTheSameModel() throws Exception {
        Path prefixed = rewrite("gpt2-tiny-f32", n -> "transformer." + n, "\"n_layer\"", "\"n_layer\"",
                Map.of(), Set.of());
        assertArrayEquals(logits(GoldenModelTest.dir("gpt2-tiny-f32")), logits(prefixed));
    }

    /** An untied head equal to the embedding, and the same weights tied, are one model. */
    @Test
    void tiedLlamaHeadReadsTheEmbedding() throws Exception {
        float[] head;
        try (Checkpoint ck = Checkpoint.open(GoldenModelTest.dir("llama-tiny-f32"))) {
            head = ck.tensor("lm_head.weight").toFloatArray();
        }
        Map<String, float[]> embedIsHead = Map.of("model.embed_tokens.weight", head);
        Path untied = rewrite("llama-tiny-f32", n -> n, "\"x\"", "\"x\"", embedIsHead, Set.of());
        Path tied = rewrite("llama-tiny-f32", n -> n, "\"tie_word_embeddings\": false", "\"tie_word_embeddings\": true",
                embedIsHead, Set.of("lm_head.weight"));
        assertArrayEquals(logits(untied), logits(tied));
    }

    /** Qwen2 checkpoints carry q/k/v biases: zero ones change nothing, others do. */
    @Test
    void qkvBiasesAreApplied() throws Exception {
        int q = 64;
        int kv = 32;
        Map<String, float[]> zero = new HashMap<>();
        Map<String, float[]> some = new HashMap<>();
        for (int l = 0; l < 2; l++) {
            String p = "model.layers." + l + ".self_attn.";
            zero.put(p + "q_proj.bias", new float[q]);
            zero.put(p + "k_proj.bias", new float[kv]);
            zero.put(p + "v_proj.bias", new float[kv]);
            float[] v = new float[kv];
            Arrays.fill(v, 0.5f);
            some.put(p + "q_proj.bias", new float[q]);
            some.put(p + "k_proj.bias", new float[kv]);
            some.put(p + "v_proj.bias", v);
        }
        Path plain = GoldenModelTest.dir("llama-tiny-f32");
        Path zeroBias = rewrite("llama-tiny-f32", n -> n, "LlamaForCausalLM", "Qwen2ForCausalLM", zero, Set.of());
        Path withBias = rewrite("llama-tiny-f32", n -> n, "LlamaForCausalLM", "Qwen2ForCausalLM", some, Set.of());
        float[] base = logits(plain);
        assertArrayEquals(base, logits(zeroBias));
        assertFalse(Arrays.equals(base, logits(withBias)), "a non-zero v bias must change the logits");
    }
}
