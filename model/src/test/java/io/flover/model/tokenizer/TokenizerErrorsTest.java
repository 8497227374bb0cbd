package io.flover.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TokenizerErrorsTest {

    @TempDir
    Path dir;

    private IOException loadFails() {
        return assertThrows(IOException.class, () -> Tokenizer.load(dir));
    }

    private static void assertMentions(Exception e, String... parts) {
        for (String part : parts) {
            assertTrue(e.getMessage().contains(part), () -> "\"" + e.getMessage() + "\" should mention " + part);
        }
    }

    private void writeTokenizer(String json) throws IOException {
        Files.writeString(dir.resolve("tokenizer.json"), json);
    }

    @Test
    void missingTokenizerJson() {
        assertMentions(loadFails(), dir.resolve("tokenizer.json").toString(), "not found");
    }

    @Test
    void malformedJson() throws IOException {
        writeTokenizer("{\"model\": {\"type\": \"BPE\",");
        assertMentions(loadFails(), dir.resolve("tokenizer.json").toString(), "malformed JSON");
    }

    @Test
    void unsupportedModelTypes() throws IOException {
        for (String type : new String[] {"Unigram", "WordPiece", "WordLevel"}) {
            writeTokenizer("{\"model\": {\"type\": \"" + type + "\", \"vocab\": {}}}");
            assertMentions(loadFails(), dir.resolve("tokenizer.json").toString(), type, "supported: BPE");
        }
    }

    @Test
    void unsupportedComponents() throws IOException {
        String model = "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}";
        writeTokenizer("{" + model + ", \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}, \"decoder\": {\"type\": \"ByteLevel\"}}");
        assertMentions(loadFails(), "tokenizer.json", "pre_tokenizer", "BertPreTokenizer", "Metaspace");
        writeTokenizer("{" + model + ", \"normalizer\": {\"type\": \"Lowercase\"}, \"decoder\": {\"type\": \"ByteLevel\"}}");
        assertMentions(loadFails(), "tokenizer.json", "normalizer", "Lowercase");
        writeTokenizer("{" + model + ", \"decoder\": {\"type\": \"WordPiece\"}}");
        assertMentions(loadFails(), "tokenizer.json", "decoder", "WordPiece");
        writeTokenizer("{" + model + "}");
        assertMentions(loadFails(), "tokenizer.json", "no decoder");
    }

    @Test
    void mergeOfUnknownToken() throws IOException {
        writeTokenizer("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]},"
                + " \"decoder\": {\"type\": \"ByteLevel\"}}");
        assertMentions(loadFails(), "tokenizer.json", "merge 0", "\"ab\"");
    }

    @Test
    void badTokenizerConfig(@TempDir Path unused) throws IOException {
        ByteLevelTokenizerWriter.write(dir, 300);
        Files.writeString(dir.resolve("tokenizer_config.json"), "{\"add_bos_token\": true, \"bos_token\": \"<missing>\"}");
        assertMentions(loadFails(), dir.resolve("tokenizer_config.json").toString(), "<missing>");
        Files.writeString(dir.resolve("tokenizer_config.json"), "not json");
        assertMentions(loadFails(), dir.resolve("tokenizer_config.json").toString(), "malformed JSON");
    }
}
