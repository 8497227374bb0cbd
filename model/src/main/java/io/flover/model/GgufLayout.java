package io.flover.model;

import io.flover.model.gguf.GgufFile;
import io.flover.model.gguf.GgufFile.TensorInfo;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Presents a GGUF model as its Hugging Face twin: the config from the {@code <arch>.*} metadata, the tensors
 * under Hugging Face names and layouts. llama.cpp's converter interleaves the two rotary halves of every Q and K
 * head (for its RoPE kernel); those rows are put back in Hugging Face order here, so one forward serves both.
 * Block-quantized tensors keep their blocks. GPT-2's projections stay [out, in] as the file holds them, not
 * {@code Conv1D}'s [in, out] (see {@link Checkpoint#conv1dAsLinear}).
 */
final class GgufLayout {
    private static final Pattern BLOCK = Pattern.compile("blk\\.(\\d+)\\.(.+)");
    private static final Map<String, String> LLAMA_NAMES = Map.ofEntries(
            Map.entry("attn_norm.weight", "input_layernorm.weight"),
            Map.entry("attn_q.weight", "self_attn.q_proj.weight"),
            Map.entry("attn_k.weight", "self_attn.k_proj.weight"),
            Map.entry("attn_v.weight", "self_attn.v_proj.weight"),
            Map.entry("attn_q.bias", "self_attn.q_proj.bias"),
            Map.entry("attn_k.bias", "self_attn.k_proj.bias"),
            Map.entry("attn_v.bias", "self_attn.v_proj.bias"),
            Map.entry("attn_output.weight", "self_attn.o_proj.weight"),
            Map.entry("ffn_norm.weight", "post_attention_layernorm.weight"),
            Map.entry("ffn_gate.weight", "mlp.gate_proj.weight"),
            Map.entry("ffn_up.weight", "mlp.up_proj.weight"),
            Map.entry("ffn_down.weight", "mlp.down_proj.weight"));
    private static final Map<String, String> GPT2_NAMES = Map.ofEntries(
            Map.entry("attn_norm.weight", "ln_1.weight"),
            Map.entry("attn_norm.bias", "ln_1.bias"),
            Map.entry("attn_qkv.weight", "attn.c_attn.weight"),
            Map.entry("attn_qkv.bias", "attn.c_attn.bias"),
            Map.entry("attn_output.weight", "attn.c_proj.weight"),
            Map.entry("attn_output.bias", "attn.c_proj.bias"),
            Map.entry("ffn_norm.weight", "ln_2.weight"),
            Map.entry("ffn_norm.bias", "ln_2.bias"),
            Map.entry("ffn_up.weight", "mlp.c_fc.weight"),
            Map.entry("ffn_up.bias", "mlp.c_fc.bias"),
            Map.entry("ffn_down.weight", "mlp.c_proj.weight"),
            Map.entry("ffn_down.bias", "mlp.c_proj.bias"));

    private GgufLayout() {
    }

    /** The {@code general.architecture} of {@code f} as the model family that runs it. */
    static Architecture architecture(GgufFile f) {
        String arch = f.string("general.architecture");
        return switch (arch) {
            case "llama", "qwen2" -> Architecture.LLAMA;
            case "gpt2" -> Architecture.GPT2;
            default -> throw new IllegalArgumentException(f.file() + ": general.architecture '" + arch
                    + "' is not supported; supported: llama (also Mistral), qwen2, gpt2");
        };
    }

    static ModelConfig config(GgufFile f) {
        Architecture family = architecture(f);
        String a = f.string("general.architecture") + ".";
        TensorInfo embed = f.tensors().get("token_embd.weight");
        if (embed == null) {
            throw new IllegalArgumentException(f.file() + ": no tensor token_embd.weight");
        }
        int vocab = Math.toIntExact(embed.shape()[0]);
        int hidden = (int) f.integer(a + "embedding_length");
        int heads = (int) f.integer(a + "attention.head_count");
        int layers = (int) f.integer(a + "block_count");
        int ffn = (int) f.integer(a + "feed_forward_length");
        int positions = (int) f.integer(a + "context_length");
        List<Integer> eos = new ArrayList<>();
        for (String key : List.of("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id")) {
            if (f.has(key) && !eos.contains((int) f.integer(key))) {
                eos.add((int) f.integer(key));
            }
        }
        int bos = (int) f.integer("tokenizer.ggml.bos_token_id", -1);
        if (family == Architecture.GPT2) {
            return new ModelConfig(family, hidden, ffn, layers, heads, heads, hidden / heads, vocab, positions,
                    (float) f.number(a + "attention.layer_norm_epsilon", 1e-5), 0, null, true, eos, bos);
        }
        int headDim = (int) f.integer(a + "attention.key_length", hidden / heads);
        long rotary = f.integer(a + "rope.dimension_count", headDim);
        if (rotary != headDim) {
            throw new IllegalArgumentException(f.file() + ": metadata " + a + "rope.dimension_count " + rotary
                    + " is not the head size " + headDim + " (partial rotary embeddings are not supported)");
        }
        if (f.has(a + "rope.scaling.type") && !f.string(a + "rope.scaling.type").equals("none")) {
            throw new IllegalArgumentException(f.file() + ": metadata " + a + "rope.scaling.type '"
                    + f.string(a + "rope.scaling.type") + "' is not supported");
        }
        return new ModelConfig(family, hidden, ffn, layers, heads, (int) f.integer(a + "attention.head_count_kv", heads),
                headDim, vocab, positions, (float) f.number(a + "attention.layer_norm_rms_epsilon", 1e-5),
                f.number(a + "rope.freq_base", 10000.0), null, !f.tensors().containsKey("output.weight"), eos, bos);
    }

    /**
     * The tensors of {@code f} under their Hugging Face names. Untouched tensors stay views of the mapping;
     * reordered ones are copied into {@code arena}.
     */
    static Map<String, Tensor> tensors(GgufFile f, ModelConfig c, Arena arena) {
        boolean gpt2 = c.architecture() == Architecture.GPT2;
        boolean permuted = f.string("general.architecture").equals("llama");
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (TensorInfo t : f.tensors().values()) {
            String name = hfName(t.name(), gpt2);
            if (name == null) {
                continue; // gpt2's output.weight repeats token_embd.weight
            }
            Tensor tensor = new Tensor(name, t.type(), t.shape(), t.data());
            if (permuted && (t.name().endsWith("attn_q.weight") || t.name().endsWith("attn_q.bias"))) {
                tensor = unpermuteRows(tensor, c.numHeads(), arena);
            } else if (permuted && (t.name().endsWith("attn_k.weight") || t.name().endsWith("attn_k.bias"))) {
                tensor = unpermuteRows(tensor, c.numKvHeads(), arena);
            }
            out.put(name, tensor);
        }
        return out;
    }

    private static String hfName(String gguf, boolean gpt2) {
        Matcher m = BLOCK.matcher(gguf);
        if (m.matches()) {
            String inner = (gpt2 ? GPT2_NAMES : LLAMA_NAMES).get(m.group(2));
            return inner == null ? gguf : (gpt2 ? "h." : "model.layers.") + m.group(1) + "." + inner;
        }
        return switch (gguf) {
            case "token_embd.weight" -> gpt2 ? "wte.weight" : "model.embed_tokens.weight";
            case "position_embd.weight" -> "wpe.weight";
            case "output_norm.weight" -> gpt2 ? "ln_f.weight" : "model.norm.weight";
            case "output_norm.bias" -> "ln_f.bias";
            case "output.weight" -> gpt2 ? null : "lm_head.weight";
            default -> gguf;
        };
    }

    /**
     * Undoes llama.cpp's {@code permute(w, n_head)}: within each head of {@code headRows} rows, GGUF row
     * {@code 2 i + j} is Hugging Face row {@code j * headRows / 2 + i}. Works on whole rows (or elements of a bias).
     */
    private static Tensor unpermuteRows(Tensor t, int heads, Arena arena) {
        long rows = t.shape()[0];
        long rowBytes = t.data().byteSize() / rows;
        long headRows = rows / heads;
        long half = headRows / 2;
        MemorySegment out = arena.allocate(t.data().byteSize(), 64);
        for (long h = 0; h < heads; h++) {
            for (long i = 0; i < half; i++) {
                for (long j = 0; j < 2; j++) {
                    long from = h * headRows + 2 * i + j;
                    long to = h * headRows + j * half + i;
                    MemorySegment.copy(t.data(), from * rowBytes, out, to * rowBytes, rowBytes);
                }
            }
        }
        return new Tensor(t.name(), t.dtype(), t.shape(), out);
    }
}
