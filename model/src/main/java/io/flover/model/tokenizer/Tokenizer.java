package io.flover.model.tokenizer;

import io.flover.model.gguf.GgufFile;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.OptionalInt;

/**
 * Text to token ids and back, as defined by a Hugging Face {@code tokenizer.json} or a GGUF file's
 * {@code tokenizer.ggml.*} metadata.
 *
 * <p>Supported are BPE tokenizers of two families: byte-level BPE (GPT-2, Llama 3, Qwen2) and
 * SentencePiece-style BPE with byte fallback (Llama 2, Mistral). Implementations are immutable
 * and safe to share between threads; {@link StreamDecoder}s are not.
 */
public interface Tokenizer {

    /**
     * Loads {@code tokenizer.json} (and {@code tokenizer_config.json} if present, for
     * {@code add_bos_token} / {@code bos_token} and {@code add_eos_token} / {@code eos_token}) from
     * a model directory.
     *
     * @throws IOException if a file cannot be read, is not valid JSON, or describes a tokenizer
     *     that is not supported; the message names the file and what is wrong
     */
    static Tokenizer load(Path modelDir) throws IOException {
        Path gguf = GgufFile.inModel(modelDir);
        if (gguf == null || Files.isRegularFile(modelDir.resolve(TokenizerLoader.TOKENIZER_FILE))) {
            return TokenizerLoader.load(modelDir);
        }
        try (GgufFile f = GgufFile.open(gguf)) {
            return GgufTokenizer.load(f);
        }
    }

    /**
     * Whether the model at {@code model} has a tokenizer: a {@code tokenizer.json} in its directory, or
     * {@code tokenizer.ggml.*} metadata in its GGUF file.
     */
    static boolean exists(Path model) throws IOException {
        if (Files.isRegularFile(model.resolve(TokenizerLoader.TOKENIZER_FILE))) {
            return true;
        }
        Path gguf = GgufFile.inModel(model);
        if (gguf == null) {
            return false;
        }
        try (GgufFile f = GgufFile.open(gguf)) {
            return GgufTokenizer.present(f);
        }
    }

    /**
     * Token ids of {@code text}. Added and special tokens written literally in the text (such as
     * {@code <|endoftext|>} or {@code <s>}) become their ids. With {@code addSpecialTokens}, the
     * tokenizer's post-processor template and {@code add_bos_token} apply (e.g. Llama's BOS).
     */
    int[] encode(String text, boolean addSpecialTokens);

    /**
     * Text of {@code ids}; with {@code skipSpecialTokens}, special added tokens are left out.
     * Invalid UTF-8 becomes U+FFFD.
     *
     * @throws IllegalArgumentException if an id is not in the vocabulary
     */
    String decode(int[] ids, boolean skipSpecialTokens);

    /** A decoder for a stream of ids that only ever emits complete characters. */
    StreamDecoder newStreamDecoder(boolean skipSpecialTokens);

    /** The largest id over the vocabulary and the added tokens, plus one. */
    int vocabSize();

    /** The id of a vocabulary or added token, given as the token's string in tokenizer.json. */
    OptionalInt tokenId(String token);
}
