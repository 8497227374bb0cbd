package io.flover.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.flover.model.tokenizer.ByteLevelTokenizerWriter;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Consumer;
import java.util.stream.Stream;

/**
 * Writes random-weight checkpoints of real model shapes in Hugging Face layout (config, generation config,
 * safetensors, byte-level BPE tokenizer), so tests, demos and benchmarks need no download. Weights are
 * deterministic for a given seed.
 */
public final class RandomCheckpoint {

    /** Model sizes: {@code tiny} for tests and demos, {@code 110m} and {@code 1b} for benchmarks. */
    public enum Preset {
        TINY, M110, B1, B7;

        public static Preset parse(String name) {
            return switch (name.toLowerCase(Locale.ROOT)) {
                case "tiny" -> TINY;
                case "110m" -> M110;
                case "1b" -> B1;
                case "7b" -> B7;
                default -> throw new IllegalArgumentException("unknown preset '" + name
                        + "' (expected tiny, 110m, 1b or 7b)");
            };
        }
    }

    private static final float INIT_STD = 0.02f;

    private RandomCheckpoint() {
    }

    /** The {@code config.json} content of a preset. */
    public static Map<String, Object> config(Architecture arch, Preset preset, DType dtype) {
        Map<String, Object> c = new LinkedHashMap<>();
        c.put("architectures", List.of(arch.hfName()));
        switch (arch) {
            case LLAMA -> {
                c.put("model_type", "llama");
                // tiny: a toy; 110m: the llama2.c "stories110M" shape; 1b: the Llama 3.2 1B shape; 7b: Llama 2 7B.
                int[] s = switch (preset) {
                    case TINY -> new int[] {128, 352, 2, 4, 2, 2048, 2048};
                    case M110 -> new int[] {768, 2048, 12, 12, 12, 32000, 2048};
                    case B1 -> new int[] {2048, 8192, 16, 32, 8, 128256, 8192};
                    case B7 -> new int[] {4096, 11008, 32, 32, 32, 32000, 4096};
                };
                c.put("hidden_size", s[0]);
                c.put("intermediate_size", s[1]);
                c.put("num_hidden_layers", s[2]);
                c.put("num_attention_heads", s[3]);
                c.put("num_key_value_heads", s[4]);
                c.put("vocab_size", s[5]);
                c.put("max_position_embeddings", s[6]);
                c.put("rms_norm_eps", 1e-5);
                c.put("rope_theta", preset == Preset.B1 ? 500000.0 : 10000.0);
                if (preset == Preset.B1) {
                    c.put("rope_scaling", Map.of("rope_type", "llama3", "factor", 32.0, "low_freq_factor", 1.0,
                            "high_freq_factor", 4.0, "original_max_position_embeddings", 8192));
                }
                c.put("tie_word_embeddings", preset == Preset.B1);
                c.put("hidden_act", "silu");
            }
            case GPT2 -> {
                c.put("model_type", "gpt2");
                // tiny: a toy; 110m: GPT-2 small (124M); 1b: GPT-2 large (774M).
                int[] s = switch (preset) {
                    case TINY -> new int[] {128, 2, 4, 2048, 1024};
                    case M110 -> new int[] {768, 12, 12, 50257, 1024};
                    case B1 -> new int[] {1280, 36, 20, 50257, 1024};
                    case B7 -> throw new IllegalArgumentException("gpt2 has no 7b preset: its largest is 1b, the "
                            + "shape of GPT-2 large");
                };
                c.put("n_embd", s[0]);
                c.put("n_layer", s[1]);
                c.put("n_head", s[2]);
                c.put("vocab_size", s[3]);
                c.put("n_positions", s[4]);
                c.put("n_ctx", s[4]);
                c.put("layer_norm_epsilon", 1e-5);
                c.put("activation_function", "gelu_new");
                c.put("tie_word_embeddings", true);
            }
        }
        int eos = eosId(c);
        c.put("bos_token_id", eos);
        c.put("eos_token_id", eos);
        c.put("torch_dtype", switch (dtype) {
            case F32 -> "float32";
            case F16 -> "float16";
            case BF16 -> "bfloat16";
            default -> throw new IllegalArgumentException("a random checkpoint is F32, F16 or BF16, not " + dtype);
        });
        return c;
    }

    /**
     * Writes a checkpoint into {@code dir} (created if needed) and reports each tensor written to
     * {@code progress} as "name (i/n)". Block-quantized dtypes are written as {@code model.gguf} in llama.cpp's
     * layout (see {@link GgufConverter}) beside the tokenizer files, from a float32 checkpoint of the same seed.
     */
    public static void write(Path dir, Architecture arch, Preset preset, DType dtype, long seed, Consumer<String> progress)
            throws IOException {
        if (dtype.quantized()) {
            Path full = Files.createTempDirectory("flover-random-");
            try {
                write(full, arch, preset, DType.F32, seed, progress);
                Files.createDirectories(dir);
                GgufConverter.convert(full, dtype, dir.resolve("model.gguf"));
                try (Stream<Path> files = Files.list(full)) {
                    for (Path f : files.toList()) {
                        if (f.getFileName().toString().startsWith("tokenizer")) {
                            Files.copy(f, dir.resolve(f.getFileName()), StandardCopyOption.REPLACE_EXISTING);
                        }
                    }
                }
            } finally {
                try (Stream<Path> files = Files.list(full)) {
                    for (Path f : files.toList()) {
                        Files.delete(f);
                    }
                }
                Files.delete(full);
            }
            return;
        }
        Files.createDirectories(dir);
        Map<String, Object> config = config(arch, preset, dtype);
        ObjectMapper json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
        json.writeValue(dir.resolve("config.json").toFile(), config);
        int eos = eosId(config);
        json.writeValue(dir.resolve("generation_config.json").toFile(),
                Map.of("bos_token_id", eos, "eos_token_id", eos, "do_sample", false));
        ModelConfig mc = ModelConfig.load(dir);
        SafetensorsWriter w = new SafetensorsWriter(dtype);
        Map<String, long[]> shapes = tensorShapes(mc);
        int i = 0;
        for (Map.Entry<String, long[]> e : shapes.entrySet()) {
            String name = e.getKey();
            String step = name + " (" + (++i) + "/" + shapes.size() + ")";
            w.add(name, e.getValue(), values -> {
                progress.accept(step);
                init(name, values, seed);
            });
        }
        w.write(dir.resolve(Checkpoint.SINGLE_FILE));
        ByteLevelTokenizerWriter.write(dir, mc.vocabSize());
    }

    /** Hugging Face tensor names and shapes of a model. */
    public static Map<String, long[]> tensorShapes(ModelConfig c) {
        Map<String, long[]> t = new LinkedHashMap<>();
        long d = c.hiddenSize();
        long f = c.intermediateSize();
        long v = c.vocabSize();
        switch (c.architecture()) {
            case LLAMA -> {
                long q = (long) c.numHeads() * c.headDim();
                long kv = (long) c.numKvHeads() * c.headDim();
                t.put("model.embed_tokens.weight", new long[] {v, d});
                for (int l = 0; l < c.numLayers(); l++) {
                    String p = "model.layers." + l + ".";
                    t.put(p + "input_layernorm.weight", new long[] {d});
                    t.put(p + "self_attn.q_proj.weight", new long[] {q, d});
                    t.put(p + "self_attn.k_proj.weight", new long[] {kv, d});
                    t.put(p + "self_attn.v_proj.weight", new long[] {kv, d});
                    t.put(p + "self_attn.o_proj.weight", new long[] {d, q});
                    t.put(p + "post_attention_layernorm.weight", new long[] {d});
                    t.put(p + "mlp.gate_proj.weight", new long[] {f, d});
                    t.put(p + "mlp.up_proj.weight", new long[] {f, d});
                    t.put(p + "mlp.down_proj.weight", new long[] {d, f});
                }
                t.put("model.norm.weight", new long[] {d});
                if (!c.tieWordEmbeddings()) {
                    t.put("lm_head.weight", new long[] {v, d});
                }
            }
            case GPT2 -> {
                t.put("wte.weight", new long[] {v, d});
                t.put("wpe.weight", new long[] {c.maxPositions(), d});
                for (int l = 0; l < c.numLayers(); l++) {
                    String p = "h." + l + ".";
                    t.put(p + "ln_1.weight", new long[] {d});
                    t.put(p + "ln_1.bias", new long[] {d});
                    t.put(p + "attn.c_attn.weight", new long[] {d, 3 * d});
                    t.put(p + "attn.c_attn.bias", new long[] {3 * d});
                    t.put(p + "attn.c_proj.weight", new long[] {d, d});
                    t.put(p + "attn.c_proj.bias", new long[] {d});
                    t.put(p + "ln_2.weight", new long[] {d});
                    t.put(p + "ln_2.bias", new long[] {d});
                    t.put(p + "mlp.c_fc.weight", new long[] {d, f});
                    t.put(p + "mlp.c_fc.bias", new long[] {f});
                    t.put(p + "mlp.c_proj.weight", new long[] {f, d});
                    t.put(p + "mlp.c_proj.bias", new long[] {d});
                }
                t.put("ln_f.weight", new long[] {d});
                t.put("ln_f.bias", new long[] {d});
            }
        }
        return t;
    }

    /** Norm scales are one, biases zero, everything else uniform with the standard deviation of GPT-2's init. */
    private static void init(String name, float[] values, long seed) {
        boolean norm = name.contains("norm") || name.contains("ln_");
        if (norm && name.endsWith(".weight")) {
            java.util.Arrays.fill(values, 1f);
            return;
        }
        if (name.endsWith(".bias")) {
            return;
        }
        SplittableRandom rnd = new SplittableRandom(seed * 0x9E3779B97F4A7C15L + name.hashCode());
        float half = INIT_STD * (float) Math.sqrt(3); // uniform [-a, a] has std a / sqrt(3)
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) (rnd.nextDouble() * 2 - 1) * half;
        }
    }

    private static int eosId(Map<String, Object> config) {
        return ByteLevelTokenizerWriter.endOfTextId((Integer) config.get("vocab_size"));
    }
}
