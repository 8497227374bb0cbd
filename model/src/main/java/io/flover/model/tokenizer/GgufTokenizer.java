package io.flover.model.tokenizer;

import io.flover.model.gguf.GgufFile;
import io.flover.model.tokenizer.PreTokenizer.PrependScheme;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;

/**
 * A tokenizer from the {@code tokenizer.ggml.*} metadata of a GGUF file, built as the Hugging Face tokenizer.json
 * of the same model would be: {@code gpt2} is byte-level BPE from {@code tokens} and {@code merges}, split as
 * {@code tokenizer.ggml.pre} says; {@code llama} is SentencePiece-style BPE with byte fallback, whose merges
 * follow from {@code scores} (a pair merges with the priority of the score of the token it makes, as
 * SentencePiece and llama.cpp merge). Control tokens become special added tokens, user-defined ones plain
 * added tokens.
 */
final class GgufTokenizer {
    private static final int NORMAL = 1;
    private static final int UNKNOWN = 2;
    private static final int CONTROL = 3;
    private static final int USER_DEFINED = 4;
    private static final String LLAMA3_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
            + "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    private static final String QWEN2_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
            + "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    private static final char METASPACE = '\u2581';

    private GgufTokenizer() {
    }

    /** Whether {@code f} carries a tokenizer. */
    static boolean present(GgufFile f) {
        return f.has("tokenizer.ggml.model");
    }

    static Tokenizer load(GgufFile f) throws IOException {
        String model = f.string("tokenizer.ggml.model");
        List<String> tokens = strings(f, "tokenizer.ggml.tokens");
        List<?> types = f.has("tokenizer.ggml.token_type") ? f.array("tokenizer.ggml.token_type") : null;
        Map<String, Integer> vocab = new HashMap<>(tokens.size() * 2);
        List<AddedToken> added = new ArrayList<>();
        for (int id = 0; id < tokens.size(); id++) {
            int type = types == null ? NORMAL : ((Number) types.get(id)).intValue();
            String token = tokens.get(id);
            if (type == CONTROL || type == UNKNOWN || type == USER_DEFINED) {
                boolean special = type != USER_DEFINED;
                added.add(new AddedToken(id, token, special, false, false, false, false));
            }
            vocab.putIfAbsent(token, id);
        }
        return switch (model) {
            case "gpt2" -> byteLevel(f, vocab, added);
            case "llama" -> sentencePiece(f, tokens, types, vocab, added);
            default -> throw f.error("tokenizer.ggml.model '" + model + "' is not supported (gpt2 and llama are)");
        };
    }

    private static Tokenizer byteLevel(GgufFile f, Map<String, Integer> vocab, List<AddedToken> added) throws IOException {
        List<BpeModel.Merge> merges = new ArrayList<>();
        List<String> lines = strings(f, "tokenizer.ggml.merges");
        for (int i = 0; i < lines.size(); i++) {
            String[] parts = lines.get(i).split(" ", -1);
            if (parts.length != 2) {
                throw f.error("tokenizer.ggml.merges[" + i + "] is not \"left right\": " + lines.get(i));
            }
            merges.add(new BpeModel.Merge(parts[0], parts[1]));
        }
        String pre = f.has("tokenizer.ggml.pre") ? f.string("tokenizer.ggml.pre") : "default";
        PreTokenizer split = switch (pre) {
            case "default", "gpt-2", "gpt2" -> PreTokenizer.byteLevel(false, true);
            case "llama3", "llama-bpe", "smaug-bpe" -> llama3Style(LLAMA3_PATTERN);
            case "qwen2" -> llama3Style(QWEN2_PATTERN);
            default -> throw f.error("tokenizer.ggml.pre '" + pre + "' is not supported (gpt-2, llama-bpe, qwen2 are)");
        };
        BpeModel model = model(f, vocab, merges, null, false);
        TokenDecoder decoder = new TokenDecoder(List.of(), true, false, (byte) 0, 0);
        return new BpeTokenizer(model, vocab, added, UnaryOperator.identity(), split, decoder, bos(f, false), eos(f));
    }

    private static PreTokenizer llama3Style(String pattern) {
        return PreTokenizer.sequence(List.of(PreTokenizer.isolate(PreTokenizer.compile(pattern)),
                PreTokenizer.byteLevel(false, false)));
    }

    private static Tokenizer sentencePiece(GgufFile f, List<String> tokens, List<?> types, Map<String, Integer> vocab,
            List<AddedToken> added) throws IOException {
        List<?> scores = f.array("tokenizer.ggml.scores");
        if (scores.size() != tokens.size()) {
            throw f.error("tokenizer.ggml.scores has " + scores.size() + " entries for " + tokens.size() + " tokens");
        }
        record Candidate(String left, String right, float score) {
        }
        List<Candidate> candidates = new ArrayList<>();
        for (int id = 0; id < tokens.size(); id++) {
            int type = types == null ? NORMAL : ((Number) types.get(id)).intValue();
            String token = tokens.get(id);
            if (type != NORMAL || vocab.get(token) != id) {
                continue;
            }
            float score = ((Number) scores.get(id)).floatValue();
            List<Candidate> local = new ArrayList<>();
            for (int cut = 1; cut < token.length(); cut++) {
                String left = token.substring(0, cut);
                String right = token.substring(cut);
                if (vocab.containsKey(left) && vocab.containsKey(right)) {
                    local.add(new Candidate(left, right, score));
                }
            }
            local.sort(Comparator.comparingInt((Candidate c) -> vocab.get(c.left)).thenComparingInt(c -> vocab.get(c.right)));
            candidates.addAll(local);
        }
        // Stable: equal scores keep the order of their tokens' ids.
        candidates.sort(Comparator.comparingDouble((Candidate c) -> c.score).reversed());
        List<BpeModel.Merge> merges = candidates.stream().map(c -> new BpeModel.Merge(c.left, c.right)).toList();
        long unkId = f.integer("tokenizer.ggml.unknown_token_id", -1);
        String unk = unkId >= 0 && unkId < tokens.size() ? tokens.get((int) unkId) : null;
        boolean spacePrefix = f.bool("tokenizer.ggml.add_space_prefix", true);
        PreTokenizer pre = PreTokenizer.metaspace(METASPACE, spacePrefix ? PrependScheme.FIRST : PrependScheme.NEVER, false);
        TokenDecoder decoder = new TokenDecoder(List.of((token, first) -> token.replace(METASPACE, ' ')), false, true,
                (byte) ' ', spacePrefix ? 1 : 0);
        return new BpeTokenizer(model(f, vocab, merges, unk, true), vocab, added, UnaryOperator.identity(), pre, decoder,
                bos(f, true), eos(f));
    }

    private static BpeModel model(GgufFile f, Map<String, Integer> vocab, List<BpeModel.Merge> merges, String unk,
            boolean byteFallback) throws IOException {
        try {
            return new BpeModel(vocab, merges, unk, byteFallback, byteFallback, false);
        } catch (IllegalArgumentException e) {
            throw f.error("tokenizer: " + e.getMessage());
        }
    }

    /** BOS in front when {@code tokenizer.ggml.add_bos_token} (by default for SentencePiece models) says so. */
    private static int[] bos(GgufFile f, boolean byDefault) {
        return f.bool("tokenizer.ggml.add_bos_token", byDefault) && f.has("tokenizer.ggml.bos_token_id")
                ? new int[] {(int) f.integer("tokenizer.ggml.bos_token_id")} : new int[0];
    }

    private static int[] eos(GgufFile f) {
        return f.bool("tokenizer.ggml.add_eos_token", false) && f.has("tokenizer.ggml.eos_token_id")
                ? new int[] {(int) f.integer("tokenizer.ggml.eos_token_id")} : new int[0];
    }

    private static List<String> strings(GgufFile f, String key) throws IOException {
        List<?> list = f.array(key);
        List<String> out = new ArrayList<>(list.size());
        for (int i = 0; i < list.size(); i++) {
            if (!(list.get(i) instanceof String s)) {
                throw f.error("metadata " + key + "[" + i + "] is not a string");
            }
            out.add(s);
        }
        return out;
    }
}
