package io.flover.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ModelConfigTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    /** Abridged from meta-llama/Llama-3.2-1B. */
    @Test
    void readsLlama3WithGqaRopeScalingAndEosList() throws IOException {
        Files.writeString(dir.resolve("config.json"), """
                {"architectures": ["LlamaForCausalLM"], "hidden_size": 2048, "intermediate_size": 8192,
                 "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
                 "vocab_size": 128256, "max_position_embeddings": 131072, "rms_norm_eps": 1e-05,
                 "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
                 "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                  "original_max_position_embeddings": 8192, "rope_type": "llama3"},
                 "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu"}""");
        Files.writeString(dir.resolve("generation_config.json"),
                "{\"bos_token_id\": 128000, \"eos_token_id\": [128001, 128008, 128009]}");
        ModelConfig c = ModelConfig.load(dir);
        assertEquals(Architecture.LLAMA, c.architecture());
        assertEquals(4, c.queriesPerKvHead());
        assertEquals(64, c.headDim());
        assertEquals(List.of(128001, 128008, 128009), c.eosTokenIds());
        assertEquals(128000, c.bosTokenId());
        assertEquals(new ModelConfig.RopeScaling(32, 1, 4, 8192), c.ropeScaling());
        assertTrue(c.tieWordEmbeddings());
    }

    @Test
    void qwen2WithSlidingWindowSwitchedOffIsAccepted() throws IOException {
        ModelConfig c = ModelConfig.parse(json("""
                {"architectures": ["Qwen2ForCausalLM"], "hidden_size": 896, "intermediate_size": 4864,
                 "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
                 "vocab_size": 151936, "max_position_embeddings": 32768, "sliding_window": 32768,
                 "use_sliding_window": false, "rope_theta": 1000000.0, "eos_token_id": 151643}"""), null);
        assertEquals(64, c.headDim());
        assertNull(c.ropeScaling());
        assertEquals(List.of(151643), c.eosTokenIds());
    }

    /** A null in generation_config.json means "not set here", and torch_dtype does not matter to loading. */
    @Test
    void nullEosInGenerationConfigFallsBackToConfig() throws IOException {
        ModelConfig c = ModelConfig.parse(json("{\"architectures\": [\"GPT2LMHeadModel\"], \"n_embd\": 64, "
                + "\"n_layer\": 1, \"n_head\": 4, \"n_positions\": 32, \"vocab_size\": 100, \"eos_token_id\": 7, "
                + "\"torch_dtype\": \"float64\"}"), json("{\"eos_token_id\": null}"));
        assertEquals(List.of(7), c.eosTokenIds());
    }

    @Test
    void mistralSlidingWindowIsRejected() throws IOException {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ModelConfig.parse(json("""
                {"architectures": ["MistralForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336,
                 "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
                 "vocab_size": 32000, "max_position_embeddings": 32768, "sliding_window": 4096}"""), null));
        assertTrue(e.getMessage().contains("sliding_window"), e.getMessage());
    }

    @Test
    void readsGpt2() throws IOException {
        ModelConfig c = ModelConfig.parse(json("""
                {"architectures": ["GPT2LMHeadModel"], "n_embd": 768, "n_layer": 12, "n_head": 12,
                 "n_positions": 1024, "vocab_size": 50257, "layer_norm_epsilon": 1e-05,
                 "activation_function": "gelu_new", "eos_token_id": 50256, "bos_token_id": 50256}"""), null);
        assertEquals(Architecture.GPT2, c.architecture());
        assertEquals(3072, c.intermediateSize());
        assertEquals(12, c.numKvHeads());
        assertTrue(c.tieWordEmbeddings());
    }

    @Test
    void unsupportedArchitectureListsSupportedOnes() throws IOException {
        Files.writeString(dir.resolve("config.json"), "{\"architectures\": [\"BertForMaskedLM\"]}");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ModelConfig.load(dir));
        assertTrue(e.getMessage().contains("BertForMaskedLM") && e.getMessage().contains("LlamaForCausalLM")
                && e.getMessage().contains("GPT2LMHeadModel") && e.getMessage().contains("config.json"), e.getMessage());
    }

    @Test
    void missingFieldIsNamed() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ModelConfig.parse(json(
                "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64}"), null));
        assertTrue(e.getMessage().contains("intermediate_size") || e.getMessage().contains("num_attention_heads"),
                e.getMessage());
    }

    @Test
    void missingConfigNamesTheFile() {
        IOException e = assertThrows(IOException.class, () -> ModelConfig.load(dir));
        assertTrue(e.getMessage().contains("config.json"), e.getMessage());
    }

    private static JsonNode json(String s) throws IOException {
        return JSON.readTree(s);
    }
}
