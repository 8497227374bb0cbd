package io.flover.model;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.flover.model.tokenizer.Tokenizer;
import java.io.IOException;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class RandomCheckpointTest {
    private static long parameters(Architecture arch, RandomCheckpoint.Preset preset) throws IOException {
        ModelConfig c = ModelConfig.parse(new com.fasterxml.jackson.databind.ObjectMapper()
                .valueToTree(RandomCheckpoint.config(arch, preset, DType.F32)), null);
        return RandomCheckpoint.tensorShapes(c).values().stream().mapToLong(Tensor::numElements).sum();
    }

    /** Published sizes of the shapes the presets copy. */
    @Test
    void presetsHaveTheSizesOfTheModelsTheyCopy() throws IOException {
        assertEquals(134.1e6, parameters(Architecture.LLAMA, RandomCheckpoint.Preset.M110), 0.1e6); // untied 110m
        assertEquals(1.236e9, parameters(Architecture.LLAMA, RandomCheckpoint.Preset.B1), 0.001e9); // Llama 3.2 1B
        assertEquals(6.738e9, parameters(Architecture.LLAMA, RandomCheckpoint.Preset.B7), 0.001e9); // Llama 2 7B
        assertEquals(124.4e6, parameters(Architecture.GPT2, RandomCheckpoint.Preset.M110), 0.1e6); // GPT-2 small
        assertEquals(774.0e6, parameters(Architecture.GPT2, RandomCheckpoint.Preset.B1), 0.1e6); // GPT-2 large
    }

    @Test
    void writesALoadableCheckpointWithTokenizer(@TempDir Path dir) throws IOException {
        RandomCheckpoint.write(dir, Architecture.LLAMA, RandomCheckpoint.Preset.TINY, DType.BF16, 1, s -> { });
        ModelConfig c = ModelConfig.load(dir);
        try (Checkpoint ck = Checkpoint.open(dir)) {
            assertEquals(RandomCheckpoint.tensorShapes(c).keySet(), ck.names());
            assertEquals(DType.BF16, ck.tensor("model.norm.weight").dtype());
            assertEquals(1f, ck.tensor("model.norm.weight").get(0));
        }
        Tokenizer t = Tokenizer.load(dir);
        assertEquals(c.vocabSize(), t.vocabSize());
        assertEquals(c.eosTokenIds().getFirst(), t.tokenId("<|endoftext|>").orElseThrow());
    }

    @Test
    void sameSeedWritesTheSameWeights(@TempDir Path a, @TempDir Path b) throws IOException {
        RandomCheckpoint.write(a, Architecture.GPT2, RandomCheckpoint.Preset.TINY, DType.F32, 9, s -> { });
        RandomCheckpoint.write(b, Architecture.GPT2, RandomCheckpoint.Preset.TINY, DType.F32, 9, s -> { });
        assertEquals(-1, java.nio.file.Files.mismatch(a.resolve(Checkpoint.SINGLE_FILE), b.resolve(Checkpoint.SINGLE_FILE)));
    }
}
