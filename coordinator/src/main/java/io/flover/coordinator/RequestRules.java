package io.flover.coordinator;

import io.flover.model.InvalidFieldException;
import io.flover.model.ModelConfig;
import io.flover.model.tokenizer.Tokenizer;
import io.flover.worker.SamplingParams;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;

/**
 * What a client may ask for, checked in one place for every API (gRPC and the OpenAI HTTP API): each rule takes
 * the field's name as that API spells it, and a broken rule is an {@link InvalidFieldException} naming it. Rules
 * about the model and the KV cache are the scheduler's, at submit.
 */
public final class RequestRules {
    /** The completion length of a request that sets none. */
    public static final int DEFAULT_MAX_TOKENS = 16;
    public static final int MAX_STOP_STRINGS = 16;
    public static final int MAX_STOP_LENGTH = 256;

    private RequestRules() {
    }

    /** The ids of a text prompt, with the tokenizer's special tokens (e.g. BOS) when {@code addSpecial}. */
    public static int[] encode(String text, Tokenizer tokenizer, boolean addSpecial, String field) {
        if (text.isEmpty()) {
            throw new InvalidFieldException(field, field + " is empty");
        }
        if (tokenizer == null) {
            throw new InvalidFieldException(field, field + ": this model has no tokenizer; send token ids");
        }
        int[] ids = tokenizer.encode(text, addSpecial);
        if (ids.length == 0) {
            throw new InvalidFieldException(field, field + " is empty once tokenized");
        }
        return ids;
    }

    /** Ids as the client sent them, each checked against the vocabulary. */
    public static int[] tokenIds(long[] ids, int vocab, String field) {
        int[] out = new int[ids.length];
        for (int i = 0; i < out.length; i++) {
            if (ids[i] < 0 || ids[i] >= vocab) {
                throw new InvalidFieldException(field, field + ": id " + ids[i] + " is outside the vocabulary [0, "
                        + vocab + ")");
            }
            out[i] = (int) ids[i];
        }
        return out;
    }

    /** A prompt of ids: not empty, each in the vocabulary. */
    public static int[] promptIds(long[] ids, int vocab, String field) {
        if (ids.length == 0) {
            throw new InvalidFieldException(field, field + " is empty");
        }
        return tokenIds(ids, vocab, field);
    }

    public static Set<Integer> stopTokenIds(long[] ids, int vocab, String field) {
        Set<Integer> out = new HashSet<>();
        for (int id : tokenIds(ids, vocab, field)) {
            out.add(id);
        }
        return out;
    }

    /** {@code requested} if set (0 is unset), clamped to int: anything that large is past every context length. */
    public static int maxTokens(long requested, String field) {
        if (requested < 0) {
            throw new InvalidFieldException(field, field + " must be at least 1, got " + requested);
        }
        return requested == 0 ? DEFAULT_MAX_TOKENS : (int) Math.min(requested, Integer.MAX_VALUE);
    }

    /**
     * The sampling of a request: the penalties' and filters' ranges are {@link SamplingParams}' own rules;
     * {@code min_tokens} keeps the ids that would end the output (stop ids, and end-of-sequence ids unless
     * {@code ignoreEos}) from being sampled early; {@code logprobs} is -1 for none, else how many of the most likely
     * tokens to report beside each sampled one's, and {@code promptLogprobs} the same for the prompt's tokens.
     */
    public static SamplingParams sampling(float temperature, int topK, float topP, float minP, float repetitionPenalty,
                                          float presencePenalty, float frequencyPenalty, long minTokens,
                                          Set<Integer> stopIds, boolean ignoreEos, int logprobs, int promptLogprobs,
                                          ModelConfig model, long seed) {
        if (minTokens < 0 || minTokens > Integer.MAX_VALUE) {
            throw new InvalidFieldException("min_tokens", "min_tokens must be at least 0, got " + minTokens);
        }
        Set<Integer> ending = new TreeSet<>(stopIds);
        if (!ignoreEos) {
            ending.addAll(model.eosTokenIds());
        }
        int[] banned = minTokens == 0 ? new int[0] : ending.stream().mapToInt(Integer::intValue).toArray();
        return new SamplingParams(temperature, topK, topP, minP, repetitionPenalty, presencePenalty, frequencyPenalty,
                (int) minTokens, banned, logprobs, promptLogprobs, seed);
    }

    /** Stop strings: a few, each short and not empty, and a tokenizer to find them in the text. */
    public static List<String> stopStrings(List<String> stop, Tokenizer tokenizer, String field) {
        if (stop.size() > MAX_STOP_STRINGS) {
            throw new InvalidFieldException(field, field + " has " + stop.size() + " strings; at most "
                    + MAX_STOP_STRINGS);
        }
        for (int i = 0; i < stop.size(); i++) {
            if (stop.get(i).isEmpty() || stop.get(i).length() > MAX_STOP_LENGTH) {
                throw new InvalidFieldException(field + "[" + i + "]", field + "[" + i + "] must have 1 to "
                        + MAX_STOP_LENGTH + " characters");
            }
        }
        if (!stop.isEmpty() && tokenizer == null) {
            throw new InvalidFieldException(field, field
                    + ": this model has no tokenizer to match strings; use stop_token_ids");
        }
        return List.copyOf(stop);
    }
}
