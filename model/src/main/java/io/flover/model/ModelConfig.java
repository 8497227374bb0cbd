package io.flover.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.flover.model.gguf.GgufFile;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The shape and hyper-parameters of a model, read from a Hugging Face {@code config.json} (and
 * {@code generation_config.json}) and normalised over architectures: GPT-2's {@code n_embd}, {@code n_layer}…
 * land in the same fields as Llama's {@code hidden_size}, {@code num_hidden_layers}….
 *
 * @param ropeScaling {@code llama3} frequency scaling, or null
 * @param eosTokenIds ids that end generation (generation_config.json wins over config.json); may be empty
 * @param bosTokenId the beginning-of-sequence id, or -1
 */
public record ModelConfig(
        Architecture architecture,
        int hiddenSize,
        int intermediateSize,
        int numLayers,
        int numHeads,
        int numKvHeads,
        int headDim,
        int vocabSize,
        int maxPositions,
        float normEps,
        double ropeTheta,
        RopeScaling ropeScaling,
        boolean tieWordEmbeddings,
        List<Integer> eosTokenIds,
        int bosTokenId) {

    /** Llama 3.1's {@code rope_scaling} of {@code rope_type: llama3}. */
    public record RopeScaling(double factor, double lowFreqFactor, double highFreqFactor, int originalMaxPositions) {
    }

    private static final ObjectMapper JSON = new ObjectMapper();

    public ModelConfig {
        eosTokenIds = List.copyOf(eosTokenIds);
        if (hiddenSize <= 0 || intermediateSize <= 0 || numLayers <= 0 || numHeads <= 0 || headDim <= 0
                || vocabSize <= 0 || maxPositions <= 0) {
            throw new IllegalArgumentException("config has a non-positive size");
        }
        if (numKvHeads <= 0 || numHeads % numKvHeads != 0) {
            throw new IllegalArgumentException("num_attention_heads " + numHeads
                    + " is not a multiple of num_key_value_heads " + numKvHeads);
        }
    }

    /** Query heads that share one KV head. */
    public int queriesPerKvHead() {
        return numHeads / numKvHeads;
    }

    /**
     * Reads {@code config.json} and, if present, {@code generation_config.json} of a model directory, or the
     * metadata of a GGUF model.
     */
    public static ModelConfig load(Path modelDir) throws IOException {
        Path gguf = GgufFile.inModel(modelDir);
        if (gguf != null) {
            try (GgufFile f = GgufFile.open(gguf)) {
                return GgufLayout.config(f);
            }
        }
        Path file = modelDir.resolve("config.json");
        if (!Files.isRegularFile(file)) {
            throw new NoSuchFileException(file + " (not a Hugging Face model directory?)");
        }
        JsonNode c = readJson(file);
        Path genFile = modelDir.resolve("generation_config.json");
        JsonNode gen = Files.isRegularFile(genFile) ? readJson(genFile) : null;
        try {
            return parse(c, gen);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(file + ": " + e.getMessage(), e);
        }
    }

    static ModelConfig parse(JsonNode c, JsonNode gen) {
        JsonNode archs = c.path("architectures");
        if (!archs.isArray() || archs.isEmpty()) {
            throw new IllegalArgumentException("no 'architectures' entry; supported: " + Architecture.supportedNames());
        }
        Architecture arch = Architecture.fromHfName(archs.get(0).asText());
        List<Integer> eos = tokenIds(gen != null && gen.hasNonNull("eos_token_id") ? gen.get("eos_token_id") : c.get("eos_token_id"));
        int bos = (gen != null && gen.hasNonNull("bos_token_id") ? gen : c).path("bos_token_id").asInt(-1);
        return switch (arch) {
            case LLAMA -> llama(c, eos, bos);
            case GPT2 -> gpt2(c, eos, bos);
        };
    }

    private static ModelConfig llama(JsonNode c, List<Integer> eos, int bos) {
        int hidden = required(c, "hidden_size");
        int heads = required(c, "num_attention_heads");
        int maxPositions = required(c, "max_position_embeddings");
        String act = c.path("hidden_act").asText("silu");
        if (!act.equals("silu")) {
            throw new IllegalArgumentException("hidden_act '" + act + "' is not supported (only silu)");
        }
        // Mistral and Qwen2 configs may ask for sliding-window attention, which this engine does not do.
        boolean windowed = c.hasNonNull("sliding_window") && c.path("use_sliding_window").asBoolean(true)
                && c.get("sliding_window").asInt() < maxPositions;
        if (windowed) {
            throw new IllegalArgumentException("sliding_window attention (" + c.get("sliding_window").asInt()
                    + ") is not supported");
        }
        return new ModelConfig(Architecture.LLAMA, hidden, required(c, "intermediate_size"),
                required(c, "num_hidden_layers"), heads, c.path("num_key_value_heads").asInt(heads),
                c.hasNonNull("head_dim") ? c.get("head_dim").asInt() : hidden / heads,
                required(c, "vocab_size"), maxPositions, (float) c.path("rms_norm_eps").asDouble(1e-6),
                c.path("rope_theta").asDouble(10000.0), ropeScaling(c.get("rope_scaling")),
                c.path("tie_word_embeddings").asBoolean(false), eos, bos);
    }

    private static ModelConfig gpt2(JsonNode c, List<Integer> eos, int bos) {
        int hidden = required(c, "n_embd");
        int heads = required(c, "n_head");
        if (heads <= 0 || hidden % heads != 0) {
            throw new IllegalArgumentException("n_embd " + hidden + " is not a multiple of n_head " + heads);
        }
        String act = c.path("activation_function").asText("gelu_new");
        if (!act.equals("gelu_new")) {
            throw new IllegalArgumentException("activation_function '" + act + "' is not supported (only gelu_new)");
        }
        return new ModelConfig(Architecture.GPT2, hidden, c.hasNonNull("n_inner") ? c.get("n_inner").asInt() : 4 * hidden,
                required(c, "n_layer"), heads, heads, hidden / heads, required(c, "vocab_size"),
                required(c, "n_positions"), (float) c.path("layer_norm_epsilon").asDouble(1e-5), 0, null,
                true, eos, bos);
    }

    private static RopeScaling ropeScaling(JsonNode s) {
        if (s == null || s.isNull()) {
            return null;
        }
        String type = s.has("rope_type") ? s.get("rope_type").asText() : s.path("type").asText();
        if (type.equals("default")) {
            return null;
        }
        if (!type.equals("llama3")) {
            throw new IllegalArgumentException("rope_scaling type '" + type + "' is not supported (only llama3)");
        }
        return new RopeScaling(required(s, "factor", "rope_scaling"), s.path("low_freq_factor").asDouble(1.0),
                s.path("high_freq_factor").asDouble(4.0), s.path("original_max_position_embeddings").asInt(8192));
    }

    private static List<Integer> tokenIds(JsonNode n) {
        List<Integer> ids = new ArrayList<>();
        if (n == null || n.isNull()) {
            return ids;
        }
        if (n.isArray()) {
            n.forEach(v -> ids.add(v.asInt()));
        } else {
            ids.add(n.asInt());
        }
        return ids;
    }

    private static int required(JsonNode c, String field) {
        JsonNode v = c.get(field);
        if (v == null || !v.canConvertToInt()) {
            throw new IllegalArgumentException("missing or non-integer '" + field + "'");
        }
        return v.asInt();
    }

    private static double required(JsonNode c, String field, String parent) {
        JsonNode v = c.get(field);
        if (v == null || !v.isNumber()) {
            throw new IllegalArgumentException("missing or non-numeric '" + parent + "." + field + "'");
        }
        return v.asDouble();
    }

    private static JsonNode readJson(Path file) throws IOException {
        try {
            return JSON.readTree(file.toFile());
        } catch (IOException e) {
            throw new IOException(file + ": not valid JSON: " + e.getMessage(), e);
        }
    }
}
