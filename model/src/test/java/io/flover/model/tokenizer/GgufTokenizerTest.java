package io.flover.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.knuddels.jtokkit.Encodings;
import com.knuddels.jtokkit.api.Encoding;
import com.knuddels.jtokkit.api.EncodingType;
import io.flover.model.Architecture;
import io.flover.model.DType;
import io.flover.model.GgufConverter;
import io.flover.model.RandomCheckpoint;
import io.flover.model.DType;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** GPT-2's tokenizer carried in GGUF metadata (tokens, token types, merges) against jtokkit's r50k_base. */
class GgufTokenizerTest {
    private static final Encoding R50K = Encodings.newDefaultEncodingRegistry().getEncoding(EncodingType.R50K_BASE);

    @Test
    void gpt2VocabularyFromMetadataMatchesJtokkit(@TempDir Path dir) throws Exception {
        RandomCheckpoint.write(dir, Architecture.GPT2, RandomCheckpoint.Preset.TINY, DType.F32, 1, step -> { });
        ByteLevelTokenizerWriter.write(dir, 50257); // the whole GPT-2 vocabulary, wider than the model's
        Path gguf = dir.resolve("gpt2.gguf");
        GgufConverter.convert(dir, DType.Q8_0, gguf);
        Tokenizer t = Tokenizer.load(gguf);
        for (String text : new RandomText(16L).strings(2_000)) {
            int[] ids = t.encode(text, true);
            assertArrayEquals(R50K.encodeOrdinary(text).toArray(), ids, () -> "ids of " + text);
            assertEquals(text, t.decode(ids, false));
        }
        assertArrayEquals(new int[] {15496, 50256, 995}, t.encode("Hello<|endoftext|> world", true));
        assertEquals("Hello world", t.decode(new int[] {15496, 50256, 995}, true));
    }
}
