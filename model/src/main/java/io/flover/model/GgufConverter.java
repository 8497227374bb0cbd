package io.flover.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.flover.model.gguf.GgufWriter;
import io.flover.model.tokenizer.Tokenizer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Writes a Hugging Face checkpoint as a GGUF file the way llama.cpp's {@code convert_hf_to_gguf.py} lays it out
 * (llama.cpp names, Q and K rows permuted for its RoPE, GPT-2's {@code Conv1D} weights as [out, in]), with its
 * matrices in a chosen type and its vectors in F32, so that llama.cpp and Flover run the very same file.
 */
public final class GgufConverter {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String LLAMA3_REGEX_START = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}";

    private GgufConverter() {
    }

    /**
     * Converts the model in {@code modelDir} to {@code out}, matrices as {@code type}.
     *
     * @return whether the tokenizer went into the file too (byte-level BPE tokenizers do; others must stay beside it)
     */
    public static boolean convert(Path modelDir, DType type, Path out) throws IOException {
        ModelConfig c = ModelConfig.load(modelDir);
        try (Checkpoint ck = Checkpoint.open(modelDir)) {
            boolean gpt2 = c.architecture() == Architecture.GPT2;
            boolean qwen2 = !gpt2 && ck.contains("model.layers.0.self_attn.q_proj.bias");
            String arch = gpt2 ? "gpt2" : qwen2 ? "qwen2" : "llama";
            GgufWriter w = new GgufWriter()
                    .string("general.architecture", arch)
                    .string("general.name", modelDir.getFileName().toString())
                    .u32("general.file_type", fileType(type))
                    .u32("general.quantization_version", 2)
                    .u32(arch + ".context_length", c.maxPositions())
                    .u32(arch + ".embedding_length", c.hiddenSize())
                    .u32(arch + ".block_count", c.numLayers())
                    .u32(arch + ".feed_forward_length", c.intermediateSize())
                    .u32(arch + ".attention.head_count", c.numHeads());
            if (gpt2) {
                w.f32(arch + ".attention.layer_norm_epsilon", c.normEps());
            } else {
                w.u32(arch + ".attention.head_count_kv", c.numKvHeads())
                        .f32(arch + ".attention.layer_norm_rms_epsilon", c.normEps())
                        .f32(arch + ".rope.freq_base", (float) c.ropeTheta())
                        .u32(arch + ".rope.dimension_count", c.headDim());
                if (c.headDim() != c.hiddenSize() / c.numHeads()) {
                    w.u32(arch + ".attention.key_length", c.headDim()).u32(arch + ".attention.value_length", c.headDim());
                }
            }
            boolean tokenizer = tokenizer(modelDir, c, w);
            for (String name : ck.names()) {
                if (gpt2 && (name.endsWith(".attn.bias") || name.endsWith(".attn.masked_bias"))) {
                    continue; // GPT-2's causal-mask buffers, not weights
                }
                addTensor(w, ck.tensor(name), name, c, type, gpt2 && !ck.conv1dAsLinear(), !gpt2 && !qwen2);
            }
            if (c.ropeScaling() != null) {
                float[] factors = ropeFactors(c);
                w.tensor("rope_freqs.weight", DType.F32, new long[] {factors.length},
                        (row, values) -> System.arraycopy(factors, 0, values, 0, factors.length));
            }
            if (gpt2) { // llama.cpp's converter repeats the tied embedding as the output matrix
                addTensor(w, ck.tensor(ck.contains("wte.weight") ? "wte.weight" : "transformer.wte.weight"),
                        "output.weight", c, type, false, false);
            }
            w.write(out);
            return tokenizer;
        }
    }

    /**
     * Llama 3's {@code rope_scaling} as llama.cpp's converter writes it: for each frequency, the divisor that
     * takes the unscaled frequency to the scaled one.
     */
    private static float[] ropeFactors(ModelConfig c) {
        ModelConfig.RopeScaling s = c.ropeScaling();
        float[] factors = new float[c.headDim() / 2];
        double lowFreqWavelen = s.originalMaxPositions() / s.lowFreqFactor();
        double highFreqWavelen = s.originalMaxPositions() / s.highFreqFactor();
        for (int i = 0; i < factors.length; i++) {
            double wavelen = 2 * Math.PI * Math.pow(c.ropeTheta(), 2.0 * i / c.headDim());
            if (wavelen < highFreqWavelen) {
                factors[i] = 1;
            } else if (wavelen > lowFreqWavelen) {
                factors[i] = (float) s.factor();
            } else {
                double smooth = (s.originalMaxPositions() / wavelen - s.lowFreqFactor()) / (s.highFreqFactor() - s.lowFreqFactor());
                factors[i] = (float) (1 / ((1 - smooth) / s.factor() + smooth));
            }
        }
        return factors;
    }

    private static int fileType(DType type) {
        return switch (type) {
            case F32 -> 0;
            case F16 -> 1;
            case Q4_0 -> 2;
            case Q8_0 -> 7;
            case BF16 -> 32;
            default -> throw new IllegalArgumentException("Flover writes F32, F16, BF16, Q8_0 and Q4_0, not " + type);
        };
    }

    /** {@code conv1d}: a GPT-2 checkpoint whose projections are {@code Conv1D} weights, transposed on the way. */
    private static void addTensor(GgufWriter w, Tensor t, String hfName, ModelConfig c, DType type, boolean conv1d,
            boolean permute) {
        boolean gpt2 = c.architecture() == Architecture.GPT2;
        String name = hfName.equals("output.weight") ? hfName : ggufName(hfName.replaceFirst("^transformer\\.", ""), gpt2);
        long[] shape = t.shape();
        boolean matrix = shape.length == 2;
        DType stored = matrix ? type : DType.F32;
        if (conv1d && matrix && name.startsWith("blk.")) {
            long in = shape[0];
            long outDim = shape[1];
            w.tensor(name, stored, new long[] {outDim, in}, (row, values) -> {
                for (int i = 0; i < in; i++) {
                    values[i] = t.get(i * outDim + row);
                }
            });
            return;
        }
        long cols = shape[shape.length - 1];
        int heads = name.endsWith("attn_q.weight") || name.endsWith("attn_q.bias") ? c.numHeads()
                : name.endsWith("attn_k.weight") || name.endsWith("attn_k.bias") ? c.numKvHeads() : 0;
        long headRows = permute && heads > 0 ? shape[0] / heads : 0;
        if (!matrix) {
            w.tensor(name, stored, new long[] {shape[0]}, (row, values) -> {
                for (int i = 0; i < values.length; i++) {
                    values[i] = t.get(headRows > 0 ? hfRow(i, headRows) : i);
                }
            });
            return;
        }
        w.tensor(name, stored, shape, (row, values) ->
                t.copyTo((headRows > 0 ? hfRow(row, headRows) : row) * cols, values, 0, values.length));
    }

    /** The Hugging Face row that llama.cpp's permutation puts at GGUF row {@code row}. */
    private static long hfRow(long row, long headRows) {
        long head = row / headRows;
        long within = row % headRows;
        return head * headRows + (within % 2) * (headRows / 2) + within / 2;
    }

    private static String ggufName(String hf, boolean gpt2) {
        String[] parts = hf.split("\\.", 4);
        if (gpt2 && parts[0].equals("h")) {
            return "blk." + parts[1] + "." + switch (parts[2] + "." + parts[3]) {
                case "ln_1.weight" -> "attn_norm.weight";
                case "ln_1.bias" -> "attn_norm.bias";
                case "attn.c_attn.weight" -> "attn_qkv.weight";
                case "attn.c_attn.bias" -> "attn_qkv.bias";
                case "attn.c_proj.weight" -> "attn_output.weight";
                case "attn.c_proj.bias" -> "attn_output.bias";
                case "ln_2.weight" -> "ffn_norm.weight";
                case "ln_2.bias" -> "ffn_norm.bias";
                case "mlp.c_fc.weight" -> "ffn_up.weight";
                case "mlp.c_fc.bias" -> "ffn_up.bias";
                case "mlp.c_proj.weight" -> "ffn_down.weight";
                case "mlp.c_proj.bias" -> "ffn_down.bias";
                default -> throw new IllegalArgumentException("tensor " + hf + " has no GGUF name");
            };
        }
        if (!gpt2 && hf.startsWith("model.layers.")) {
            String[] p = hf.split("\\.", 4);
            return "blk." + p[2] + "." + switch (p[3]) {
                case "input_layernorm.weight" -> "attn_norm.weight";
                case "post_attention_layernorm.weight" -> "ffn_norm.weight";
                case "self_attn.q_proj.weight" -> "attn_q.weight";
                case "self_attn.k_proj.weight" -> "attn_k.weight";
                case "self_attn.v_proj.weight" -> "attn_v.weight";
                case "self_attn.q_proj.bias" -> "attn_q.bias";
                case "self_attn.k_proj.bias" -> "attn_k.bias";
                case "self_attn.v_proj.bias" -> "attn_v.bias";
                case "self_attn.o_proj.weight" -> "attn_output.weight";
                case "mlp.gate_proj.weight" -> "ffn_gate.weight";
                case "mlp.up_proj.weight" -> "ffn_up.weight";
                case "mlp.down_proj.weight" -> "ffn_down.weight";
                default -> throw new IllegalArgumentException("tensor " + hf + " has no GGUF name");
            };
        }
        return switch (hf) {
            case "model.embed_tokens.weight", "wte.weight" -> "token_embd.weight";
            case "wpe.weight" -> "position_embd.weight";
            case "model.norm.weight", "ln_f.weight" -> "output_norm.weight";
            case "ln_f.bias" -> "output_norm.bias";
            case "lm_head.weight" -> "output.weight";
            default -> throw new IllegalArgumentException("tensor " + hf + " has no GGUF name");
        };
    }

    /** Writes a byte-level BPE tokenizer.json as llama.cpp's {@code gpt2} tokenizer; false for other kinds. */
    private static boolean tokenizer(Path dir, ModelConfig c, GgufWriter w) throws IOException {
        Path file = dir.resolve("tokenizer.json");
        if (!Files.isRegularFile(file)) {
            return false;
        }
        JsonNode root = JSON.readTree(file.toFile());
        JsonNode model = root.path("model");
        String pre = preTokenizer(root.path("pre_tokenizer"));
        if (!model.path("type").asText("BPE").equals("BPE") || pre == null) {
            return false;
        }
        Map<Integer, String> tokens = new HashMap<>();
        Map<Integer, Integer> types = new HashMap<>();
        for (Map.Entry<String, JsonNode> e : model.path("vocab").properties()) {
            tokens.put(e.getValue().asInt(), e.getKey());
        }
        for (JsonNode added : root.path("added_tokens")) {
            int id = added.path("id").asInt();
            tokens.put(id, added.path("content").asText());
            types.put(id, added.path("special").asBoolean(false) ? 3 : 4);
        }
        int size = Math.max(c.vocabSize(), tokens.keySet().stream().mapToInt(i -> i + 1).max().orElse(0));
        List<String> tokenList = new ArrayList<>(size);
        List<Integer> typeList = new ArrayList<>(size);
        for (int id = 0; id < size; id++) {
            tokenList.add(tokens.getOrDefault(id, "[PAD" + id + "]"));
            typeList.add(tokens.containsKey(id) ? types.getOrDefault(id, 1) : 5); // 1 normal, 5 unused
        }
        List<String> merges = new ArrayList<>();
        for (JsonNode m : model.path("merges")) {
            merges.add(m.isTextual() ? m.textValue() : m.get(0).textValue() + " " + m.get(1).textValue());
        }
        w.string("tokenizer.ggml.model", "gpt2").string("tokenizer.ggml.pre", pre).strings("tokenizer.ggml.tokens", tokenList)
                .i32s("tokenizer.ggml.token_type", typeList).strings("tokenizer.ggml.merges", merges);
        Tokenizer t = Tokenizer.load(dir);
        int[] around = t.encode("", true);
        if (c.bosTokenId() >= 0) {
            w.u32("tokenizer.ggml.bos_token_id", c.bosTokenId())
                    .bool("tokenizer.ggml.add_bos_token", around.length > 0 && around[0] == c.bosTokenId());
        }
        if (!c.eosTokenIds().isEmpty()) {
            w.u32("tokenizer.ggml.eos_token_id", c.eosTokenIds().getFirst());
        }
        Path config = dir.resolve("tokenizer_config.json");
        JsonNode template = Files.isRegularFile(config) ? JSON.readTree(config.toFile()).path("chat_template") : null;
        if (template != null && template.isTextual()) {
            w.string("tokenizer.chat_template", template.textValue());
        }
        return true;
    }

    /** llama.cpp's name for a byte-level pre-tokenizer, or null for one it would not know. */
    private static String preTokenizer(JsonNode pre) {
        String type = pre.path("type").asText("");
        if (type.equals("ByteLevel") && pre.path("use_regex").asBoolean(true)) {
            return "gpt-2";
        }
        if (type.equals("Sequence")) {
            JsonNode steps = pre.path("pretokenizers");
            if (steps.size() == 2 && steps.get(0).path("pattern").path("Regex").asText("").startsWith(LLAMA3_REGEX_START)
                    && steps.get(1).path("type").asText("").equals("ByteLevel")) {
                return "llama-bpe";
            }
        }
        return null;
    }
}
