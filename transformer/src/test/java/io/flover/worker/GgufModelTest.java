package io.flover.worker;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flover.collectives.Communicator;
import io.flover.collectives.LocalGroup;
import io.flover.kernels.cpu.CpuBackend;
import io.flover.kernels.cpu.CpuKernels;
import io.flover.model.Checkpoint;
import io.flover.model.GgufConverter;
import io.flover.model.ModelConfig;
import io.flover.model.RandomCheckpoint;
import io.flover.model.SafetensorsWriter;
import io.flover.model.DType;
import io.flover.model.gguf.GgufFile;
import io.flover.model.gguf.GgufFile.TensorInfo;
import io.flover.model.tokenizer.Tokenizer;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * GGUF models beyond the golden numbers ({@link GoldenModelTest} runs the golden GGUF files): Flover's own
 * converter against gguf-py's files, model paths, and the tokenizers that GGUF metadata defines.
 */
class GgufModelTest {
    @TempDir
    Path tmp;

    /** {@code flover quantize}'s Q8_0 file holds, tensor by tensor, the bytes that gguf-py wrote (to_gguf.py). */
    @ParameterizedTest
    @ValueSource(strings = {"llama", "gpt2"})
    void quantizeWritesWhatGgufPyWrites(String arch) throws Exception {
        Path mine = tmp.resolve(arch + ".gguf");
        GgufConverter.convert(GoldenModelTest.dir(arch + "-tiny-f32"), DType.Q8_0, mine);
        try (GgufFile theirs = GgufFile.open(GoldenModelTest.dir(arch + "-tiny-q8_0.gguf")); GgufFile ours = GgufFile.open(mine)) {
            assertEquals(theirs.tensors().keySet(), ours.tensors().keySet());
            for (TensorInfo t : theirs.tensors().values()) {
                TensorInfo o = ours.tensors().get(t.name());
                assertEquals(t.type(), o.type(), t.name());
                assertArrayEquals(t.shape(), o.shape(), t.name());
                assertArrayEquals(t.data().toArray(ValueLayout.JAVA_BYTE), o.data().toArray(ValueLayout.JAVA_BYTE), t.name());
            }
            for (String key : List.of(arch + ".embedding_length", arch + ".block_count", arch + ".attention.head_count",
                    arch + ".context_length", arch + ".feed_forward_length")) {
                assertEquals(theirs.integer(key), ours.integer(key), key);
            }
        }
    }

    /**
     * GPT-2's projections keep their Q8_0 blocks, [out, in] as the file holds them, rather than being widened to go
     * back to Conv1D's [in, out] ({@link GoldenModelTest} checks the file's logits and ids).
     */
    @Test
    void gpt2ProjectionsKeepTheirBlocks() throws Exception {
        try (Checkpoint ck = Checkpoint.open(GoldenModelTest.dir("gpt2-tiny-q8_0.gguf"))) {
            assertTrue(ck.conv1dAsLinear());
            for (String name : List.of("h.0.attn.c_attn.weight", "h.1.mlp.c_proj.weight")) {
                assertEquals(DType.Q8_0, ck.tensor(name).dtype(), name);
            }
            assertArrayEquals(new long[] {3 * 64, 64}, ck.tensor("h.0.attn.c_attn.weight").shape());
            assertArrayEquals(new long[] {64, 4 * 64}, ck.tensor("h.1.mlp.c_proj.weight").shape());
        }
    }

    /** An F32 GGUF of a checkpoint gives the checkpoint's logits bit for bit, Q/K permutation undone. */
    @ParameterizedTest
    @ValueSource(strings = {"llama-tiny-f32", "gpt2-tiny-f32"})
    void f32RoundTripGivesIdenticalLogits(String name) throws Exception {
        Path file = tmp.resolve(name + ".gguf");
        GgufConverter.convert(GoldenModelTest.dir(name), DType.F32, file);
        assertEquals(ModelConfig.load(GoldenModelTest.dir(name)).hiddenSize(), ModelConfig.load(file).hiddenSize());
        int[] prompt = {5, 17, 300, 42, 9, 77, 128};
        try (CpuKernels kernels = new CpuKernels(2)) {
            float[] expected = logits(GoldenModelTest.dir(name), prompt, kernels);
            assertArrayEquals(expected, logits(file, prompt, kernels));
        }
    }

    private static float[] logits(Path model, int[] prompt, CpuKernels kernels) throws Exception {
        try (var backend = new CpuBackend(kernels); LoadedModel m = LoadedModel.open(model, backend)) {
            return GoldenModelTest.greedyFused(m, List.of(prompt), 1, prompt.length).firstLogits()[0];
        }
    }

    /**
     * A Q8_0 Llama whose shards are whole blocks (MLP 128 and 2 heads of 16 per rank on 2 ranks) gives on 2 ranks
     * the logits it gives on one, up to the all-reduce's order of summation; on 4 ranks a rank's 16 attention
     * columns are half a block, and loading says so.
     */
    @Test
    void quantizedShardsAreWholeBlocks() throws Exception {
        Path dir = writeLlama(tmp.resolve("llama-q8"), "");
        Path file = tmp.resolve("llama-q8.gguf");
        GgufConverter.convert(dir, DType.Q8_0, file);
        int[] prompt = {5, 17, 200, 42, 9};
        float[] whole;
        try (CpuKernels kernels = new CpuKernels(2)) {
            whole = logits(file, prompt, kernels);
        }
        List<float[]> ranks = onRanks(file, prompt, 2);
        for (float[] rank : ranks) {
            for (int i = 0; i < whole.length; i++) {
                assertEquals(whole[i], rank[i], 1e-4, "logit " + i);
            }
        }
        Exception e = assertThrows(Exception.class, () -> onRanks(file, prompt, 4));
        Throwable cause = e;
        while (cause.getCause() != null) {
            cause = cause.getCause();
        }
        assertTrue(cause.getMessage().contains("self_attn.o_proj.weight: columns [0, 16) of 64 do not fall on Q8_0 block"
                + " boundaries (blocks of 32 columns)"), cause.getMessage());
    }

    /**
     * Llama 3's rope_scaling goes into a GGUF file as llama.cpp's per-frequency divisors (rope_freqs.weight), and
     * the file gives the checkpoint's logits (to float rounding of the frequencies); they differ without it.
     */
    @Test
    void llama3RopeScalingTravelsAsFrequencyFactors() throws Exception {
        String scaling = ", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0,"
                + " \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 16}";
        Path scaled = writeLlama(tmp.resolve("scaled"), scaling);
        Path file = tmp.resolve("scaled.gguf");
        GgufConverter.convert(scaled, DType.F32, file);
        int[] prompt = {5, 17, 200, 42, 9, 3, 8, 100, 7, 33, 12};
        try (CpuKernels kernels = new CpuKernels(2)) {
            float[] expected = logits(scaled, prompt, kernels);
            float[] actual = logits(file, prompt, kernels);
            float[] unscaled = logits(writeLlama(tmp.resolve("unscaled"), ""), prompt, kernels);
            double worst = 0;
            double apart = 0;
            for (int i = 0; i < expected.length; i++) {
                worst = Math.max(worst, Math.abs(expected[i] - actual[i]));
                apart = Math.max(apart, Math.abs(expected[i] - unscaled[i]));
            }
            assertTrue(worst < 1e-4, "GGUF against checkpoint: " + worst);
            assertTrue(apart > 1e-2, "scaled against unscaled: " + apart);
        }
    }

    /** A Qwen2 checkpoint (QKV biases) becomes a {@code qwen2} GGUF, unpermuted, with the same logits bit for bit. */
    @Test
    void qwen2RoundTripsWithItsBiases() throws Exception {
        Path dir = writeModel(tmp.resolve("qwen2"), "Qwen2ForCausalLM", "");
        Path file = tmp.resolve("qwen2.gguf");
        GgufConverter.convert(dir, DType.F32, file);
        try (GgufFile f = GgufFile.open(file)) {
            assertEquals("qwen2", f.string("general.architecture"));
            assertTrue(f.tensors().containsKey("blk.1.attn_k.bias"));
        }
        int[] prompt = {5, 17, 200, 42, 9};
        try (CpuKernels kernels = new CpuKernels(2)) {
            assertArrayEquals(logits(dir, prompt, kernels), logits(file, prompt, kernels));
        }
    }

    private static Path writeLlama(Path dir, String extraConfig) throws Exception {
        return writeModel(dir, "LlamaForCausalLM", extraConfig);
    }

    /**
     * A small random float32 Llama-shaped model (hidden 64, MLP 128, 4 heads on 2 KV heads) with {@code extraConfig}
     * fields; a Qwen2 one has QKV biases.
     */
    private static Path writeModel(Path dir, String architecture, String extraConfig) throws Exception {
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("config.json"), """
                {"architectures": ["%s"], "hidden_size": 64, "intermediate_size": 128,
                 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256,
                 "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "eos_token_id": 2%s}"""
                .formatted(architecture, extraConfig));
        ModelConfig c = ModelConfig.load(dir);
        SafetensorsWriter w = new SafetensorsWriter(DType.F32);
        java.util.SplittableRandom random = new java.util.SplittableRandom(16);
        java.util.Map<String, long[]> shapes = new java.util.LinkedHashMap<>(RandomCheckpoint.tensorShapes(c));
        if (architecture.startsWith("Qwen2")) {
            for (int i = 0; i < c.numLayers(); i++) {
                shapes.put("model.layers." + i + ".self_attn.q_proj.bias", new long[] {64});
                shapes.put("model.layers." + i + ".self_attn.k_proj.bias", new long[] {32});
                shapes.put("model.layers." + i + ".self_attn.v_proj.bias", new long[] {32});
            }
        }
        shapes.forEach((name, shape) -> w.add(name, shape, values -> {
            for (int i = 0; i < values.length; i++) {
                values[i] = shape.length == 1 ? 1 + 0.1f * (float) random.nextGaussian() : 0.2f * (float) random.nextGaussian();
            }
        }));
        w.write(dir.resolve("model.safetensors"));
        return dir;
    }

    private static List<float[]> onRanks(Path model, int[] prompt, int size) throws Exception {
        List<Communicator> comms = LocalGroup.create(size, Duration.ofSeconds(30));
        ExecutorService pool = Executors.newFixedThreadPool(size);
        try {
            List<Future<float[]>> futures = new ArrayList<>();
            for (Communicator comm : comms) {
                futures.add(pool.submit(() -> {
                    try (CpuKernels kernels = new CpuKernels(1);
                         LoadedModel m = LoadedModel.open(model, new CpuBackend(kernels), comm)) {
                        return GoldenModelTest.greedyFused(m, List.of(prompt), 1, prompt.length).firstLogits()[0];
                    } finally {
                        comm.close();
                    }
                }));
            }
            List<float[]> out = new ArrayList<>();
            for (Future<float[]> f : futures) {
                out.add(f.get(60, TimeUnit.SECONDS));
            }
            return out;
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void aDirectoryHoldingOneGgufIsAModel() throws Exception {
        Path dir = Files.createDirectories(tmp.resolve("model"));
        Files.copy(GoldenModelTest.dir("llama-tiny-q8_0.gguf"), dir.resolve("weights.gguf"));
        assertEquals(2, ModelConfig.load(dir).numKvHeads());
        Files.copy(GoldenModelTest.dir("llama-tiny-f32.gguf"), dir.resolve("other.gguf"));
        Exception e = assertThrows(Exception.class, () -> ModelConfig.load(dir));
        assertTrue(e.getMessage().contains("several GGUF files (other.gguf, weights.gguf)"), e.getMessage());
    }

    @Test
    void unsupportedArchitectureIsNamed() throws Exception {
        Path file = tmp.resolve("phi.gguf");
        byte[] bytes = Files.readAllBytes(GoldenModelTest.dir("llama-tiny-f32.gguf"));
        String text = new String(bytes, java.nio.charset.StandardCharsets.ISO_8859_1);
        int at = text.indexOf("general.architecture") + "general.architecture".length() + 4 + 8;
        bytes[at] = 'p'; bytes[at + 1] = 'h'; bytes[at + 2] = 'i'; bytes[at + 3] = '3'; bytes[at + 4] = 'x';
        Files.write(file, bytes);
        Exception e = assertThrows(IllegalArgumentException.class, () -> ModelConfig.load(file));
        assertTrue(e.getMessage().contains("general.architecture 'phi3x' is not supported"), e.getMessage());
    }

    /**
     * The golden Llama GGUF's SentencePiece vocabulary (to_gguf.py): ▁ = 259, ▁a.. = 260.., a.. = 286.., then
     * aa, ab, ...; scores fall with the id, so ▁x merges before any pair of letters. Expected ids worked out by
     * SentencePiece's rule (highest-scoring pair first, leftmost on ties), with byte fallback for é.
     */
    @Test
    void sentencePieceFromMetadata() throws Exception {
        Tokenizer t = Tokenizer.load(GoldenModelTest.dir("llama-tiny-f32.gguf"));
        int a = 286;
        int spaceA = 260;
        int pairAa = 312;
        assertArrayEquals(new int[] {1, spaceA, a + 1, 260 + 2}, t.encode("ab c", true));
        // "aab": ▁+a first (▁a), then a+b (ab, id 312 + 1), then ▁a+ab is not a token.
        assertArrayEquals(new int[] {spaceA, pairAa + 1}, t.encode("aab", false));
        assertArrayEquals(new int[] {259, 3 + 0xC3, 3 + 0xA9}, t.encode("\u00e9", false));
        assertArrayEquals(new int[] {1, spaceA, 2}, t.encode("a</s>", true));
        assertEquals("ab c", t.decode(t.encode("ab c", true), true));
        assertEquals(List.of(2), ModelConfig.load(GoldenModelTest.dir("llama-tiny-f32.gguf")).eosTokenIds());
    }

    /**
     * The golden GPT-2 GGUF's byte-level vocabulary: 256 byte tokens, then the merges Ġa, ..., Ġz, aa, ..., iu in
     * that order, so "tea" becomes t + ea (there is no t+e) and " at" Ġa + t.
     */
    @Test
    void byteLevelBpeFromMetadata() throws Exception {
        Tokenizer t = Tokenizer.load(GoldenModelTest.dir("gpt2-tiny-f32.gguf"));
        int[] expected = List.of("t", "ea", "\u0120a", "t").stream().mapToInt(s -> t.tokenId(s).orElseThrow()).toArray();
        assertArrayEquals(expected, t.encode("tea at", false));
        assertEquals("tea at", t.decode(expected, false));
        assertArrayEquals(new int[] {511}, t.encode("<|endoftext|>", false));
        assertEquals(List.of(511), ModelConfig.load(GoldenModelTest.dir("gpt2-tiny-f32.gguf")).eosTokenIds());
    }
}
