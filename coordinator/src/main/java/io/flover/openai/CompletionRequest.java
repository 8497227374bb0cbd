package io.flover.openai;

import com.fasterxml.jackson.databind.JsonNode;
import io.flover.coordinator.GenerationRequest;
import io.flover.coordinator.RequestRules;
import io.flover.model.InvalidFieldException;
import io.flover.model.ModelConfig;
import io.flover.model.tokenizer.Tokenizer;
import io.flover.worker.SamplingParams;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;

/**
 * A {@code /v1/completions} or {@code /v1/chat/completions} request, read and checked: its prompts and, for each,
 * {@code n} choices as the scheduler's requests (each with a seed of its own), and how the answer is shaped.
 * The generation rules themselves are {@link RequestRules}' and the scheduler's, shared with the gRPC API.
 */
record CompletionRequest(boolean chat, List<Prompt> prompts, int n, List<GenerationRequest> choices, boolean stream,
                         boolean includeUsage, boolean echo, boolean returnTokenIds, int logprobs) {
    static final int MAX_N = 8;

    /** A prompt as ids, and as text where {@code echo} needs it. */
    record Prompt(int[] ids, String text) {
    }

    /** What a request is read against: the served model and how it turns text and conversations into ids. */
    record Model(String name, ModelConfig config, Tokenizer tokenizer, Optional<ChatTemplate> template) {
    }

    static CompletionRequest completion(JsonNode body, Model model) {
        Fields f = new Fields(body, "");
        checkModel(f, model);
        f.refuse("suffix", "logit_bias", "best_of", "response_format");
        boolean echo = f.bool("echo", false);
        int logprobs = (int) f.integer("logprobs", -1, 0, SamplingParams.MAX_LOGPROBS);
        List<Prompt> prompts = prompts(f, model, echo);
        // With echo, max_tokens 0 answers with the prompt alone: to score a text by its log-probabilities.
        long maxTokens = f.integer("max_tokens", RequestRules.DEFAULT_MAX_TOKENS, echo ? 0 : 1, Long.MAX_VALUE);
        return common(f, model, false, prompts, p -> maxTokens, echo, logprobs);
    }

    static CompletionRequest chat(JsonNode body, Model model) {
        Fields f = new Fields(body, "");
        checkModel(f, model);
        f.refuse("tools", "tool_choice", "functions", "function_call", "parallel_tool_calls", "logit_bias",
                "audio", "modalities", "prediction", "web_search_options", "reasoning_effort");
        int logprobs = f.bool("logprobs", false) ? (int) f.integer("top_logprobs", 0, 0, SamplingParams.MAX_LOGPROBS) : -1;
        if (logprobs < 0 && f.has("top_logprobs")) {
            throw ApiError.invalid("top_logprobs", "top_logprobs needs logprobs: true");
        }
        JsonNode format = f.get("response_format");
        if (format != null && !"text".equals(format.path("type").asText())) {
            throw ApiError.unsupported("response_format");
        }
        Prompt prompt = new Prompt(chatPromptIds(f, model), null);
        Long maxTokens = f.has("max_completion_tokens") ? (Long) f.integer("max_completion_tokens", 0, 1, Long.MAX_VALUE)
                : f.has("max_tokens") ? (Long) f.integer("max_tokens", 0, 1, Long.MAX_VALUE) : null;
        // Without a limit a reply may fill the context, as OpenAI's does.
        return common(f, model, true, List.of(prompt),
                p -> maxTokens != null ? maxTokens : Math.max(1, model.config().maxPositions() - p.ids().length), false,
                logprobs);
    }

    /**
     * The ids of {@code messages} rendered by the model's chat template, ending with the assistant's header unless
     * {@code add_generation_prompt} is false; the template writes the special tokens (BOS among them) itself.
     */
    static int[] chatPromptIds(Fields f, Model model) {
        List<ChatTemplate.Message> messages = messages(f.get("messages"));
        boolean addGenerationPrompt = f.bool("add_generation_prompt", true);
        ChatTemplate template = model.template().orElseThrow(() -> ApiError.invalid("messages",
                "this model has no chat template; use /v1/completions, or start the server with --chat-template FILE"));
        return RequestRules.encode(template.render(messages, addGenerationPrompt), model.tokenizer(), false, "messages");
    }

    private static CompletionRequest common(Fields f, Model model, boolean chat, List<Prompt> prompts,
                                            java.util.function.ToLongFunction<Prompt> maxTokens, boolean echo,
                                            int logprobs) {
        f.ignore("user");
        int n = (int) f.integer("n", 1, 1, MAX_N);
        boolean stream = f.bool("stream", false);
        boolean includeUsage = false;
        JsonNode options = f.get("stream_options");
        if (options != null) {
            if (!stream) {
                throw ApiError.invalid("stream_options", "stream_options is only allowed with stream: true");
            }
            Fields o = new Fields(options, "stream_options");
            includeUsage = o.bool("include_usage", false);
            o.rejectUnknown();
        }
        // OpenAI's defaults: temperature 1, top_p 1.
        float temperature = (float) f.number("temperature", 1, 0, 2);
        float topP = (float) f.number("top_p", 1, 0, 1);
        long topK = f.integer("top_k", 0, -1, Integer.MAX_VALUE);
        float minP = (float) f.number("min_p", 0, 0, 1);
        float repetitionPenalty = (float) f.number("repetition_penalty", 1, 0, Float.MAX_VALUE);
        float presencePenalty = (float) f.number("presence_penalty", 0, -2, 2);
        float frequencyPenalty = (float) f.number("frequency_penalty", 0, -2, 2);
        long minTokens = f.integer("min_tokens", 0, 0, Integer.MAX_VALUE);
        Long seed = f.has("seed") ? (Long) f.integer("seed", 0, Long.MIN_VALUE, Long.MAX_VALUE) : null;
        boolean ignoreEos = f.bool("ignore_eos", false);
        boolean returnTokenIds = f.bool("return_token_ids", false);
        int vocab = model.config().vocabSize();
        List<String> stop = RequestRules.stopStrings(f.strings("stop"), model.tokenizer(), "stop");
        Set<Integer> stopIds = RequestRules.stopTokenIds(f.integers("stop_token_ids"), vocab, "stop_token_ids");
        f.rejectUnknown();

        List<GenerationRequest> choices = new ArrayList<>();
        for (Prompt p : prompts) {
            // 0 comes only with echo; RequestRules reads 0 as unset, as the gRPC API's proto3 default is.
            long requested = maxTokens.applyAsLong(p);
            int max = requested == 0 ? 0
                    : RequestRules.maxTokens(requested, chat ? "max_completion_tokens" : "max_tokens");
            for (int i = 0; i < n; i++) {
                // Choices are independent samples: each its own seed, and with a seed a request replays.
                long s = seed != null ? seed + i : ThreadLocalRandom.current().nextLong();
                SamplingParams sampling = RequestRules.sampling(temperature, topK < 0 ? 0 : (int) topK, topP, minP,
                        repetitionPenalty, presencePenalty, frequencyPenalty, minTokens, stopIds, ignoreEos, logprobs,
                        echo ? logprobs : -1, model.config(), s);
                choices.add(new GenerationRequest(p.ids(), max, sampling, stop, stopIds, ignoreEos));
            }
        }
        return new CompletionRequest(chat, prompts, n, choices, stream, includeUsage, echo, returnTokenIds, logprobs);
    }

    private static void checkModel(Fields f, Model model) {
        String name = f.string("model");
        if (name != null && !name.equals(model.name())) {
            throw ApiError.notFound("model", "model_not_found", "the model '" + name + "' does not exist; this server "
                    + "serves '" + model.name() + "'");
        }
    }

    /** {@code prompt}: a string, a list of strings, a list of ids, or a list of lists of ids; one choice set each. */
    private static List<Prompt> prompts(Fields f, Model model, boolean echo) {
        JsonNode prompt = f.get("prompt");
        if (prompt == null) {
            throw ApiError.invalid("prompt", "prompt is required");
        }
        List<Prompt> out = new ArrayList<>();
        if (prompt.isTextual()) {
            out.add(text(prompt.textValue(), model, echo));
        } else if (prompt.isArray() && !prompt.isEmpty() && prompt.get(0).isIntegralNumber()) {
            out.add(ids(prompt, model, echo));
        } else if (prompt.isArray() && !prompt.isEmpty()) {
            for (JsonNode p : prompt) {
                if (p.isTextual()) {
                    out.add(text(p.textValue(), model, echo));
                } else if (p.isArray()) {
                    out.add(ids(p, model, echo));
                } else {
                    throw ApiError.invalid("prompt", "prompt must be a string, a list of strings, a list of token "
                            + "ids or a list of lists of token ids");
                }
            }
        } else {
            throw ApiError.invalid("prompt", "prompt must be a non-empty string, a list of strings, a list of token "
                    + "ids or a list of lists of token ids");
        }
        if (out.size() > MAX_N) {
            throw ApiError.invalid("prompt", "prompt holds " + out.size() + " prompts; at most " + MAX_N);
        }
        return out;
    }

    private static Prompt text(String text, Model model, boolean echo) {
        return new Prompt(RequestRules.encode(text, model.tokenizer(), true, "prompt"), echo ? text : null);
    }

    private static Prompt ids(JsonNode ids, Model model, boolean echo) {
        int[] prompt = RequestRules.promptIds(Fields.integers(ids, "prompt"), model.config().vocabSize(), "prompt");
        if (echo && model.tokenizer() == null) {
            throw new InvalidFieldException("echo", "echo: this model has no tokenizer to write the prompt as text");
        }
        return new Prompt(prompt, echo ? model.tokenizer().decode(prompt, false) : null);
    }

    /** {@code messages}: roles system, user and assistant, content as a string or a list of text parts. */
    private static List<ChatTemplate.Message> messages(JsonNode messages) {
        if (messages == null || !messages.isArray() || messages.isEmpty()) {
            throw ApiError.invalid("messages", "messages must be a non-empty list");
        }
        List<ChatTemplate.Message> out = new ArrayList<>();
        for (int i = 0; i < messages.size(); i++) {
            Fields m = new Fields(messages.get(i), "messages[" + i + "]");
            String role = m.string("role");
            if (role == null || !(role.equals("system") || role.equals("user") || role.equals("assistant"))) {
                throw ApiError.invalid(m.param("role"), m.param("role") + " must be system, user or assistant, got "
                        + (role == null ? "nothing" : "'" + role + "'"));
            }
            String content = content(m.get("content"), m.param("content"));
            m.refuse("tool_calls", "tool_call_id", "function_call", "audio", "refusal");
            m.ignore("name");
            m.rejectUnknown();
            out.add(new ChatTemplate.Message(role, content));
        }
        return out;
    }

    /** A string, or a list of {@code {"type": "text", "text": ...}} parts joined by newlines, as vLLM joins them. */
    private static String content(JsonNode content, String param) {
        if (content == null) {
            throw ApiError.invalid(param, param + " is required");
        }
        if (content.isTextual()) {
            return content.textValue();
        }
        if (!content.isArray()) {
            throw ApiError.invalid(param, param + " must be a string or a list of text parts");
        }
        List<String> texts = new ArrayList<>();
        for (int j = 0; j < content.size(); j++) {
            Fields part = new Fields(content.get(j), param + "[" + j + "]");
            String type = part.string("type");
            if (!"text".equals(type)) {
                throw ApiError.invalid(part.param("type"), part.param("type") + " '" + type
                        + "' is not supported; only text parts are");
            }
            String text = part.string("text");
            if (text == null) {
                throw ApiError.invalid(part.param("text"), part.param("text") + " is required");
            }
            part.rejectUnknown();
            texts.add(text);
        }
        return String.join("\n", texts);
    }
}
