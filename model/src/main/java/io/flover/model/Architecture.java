package io.flover.model;

import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;

/** The model families Flover runs, with the Hugging Face {@code architectures} names that map to each. */
public enum Architecture {
    /** Llama, and the Llama-shaped Mistral (without sliding window) and Qwen2 (with QKV bias). */
    LLAMA(List.of("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM")),
    GPT2(List.of("GPT2LMHeadModel"));

    private final List<String> hfNames;

    Architecture(List<String> hfNames) {
        this.hfNames = hfNames;
    }

    /** The Hugging Face name written into configs of new checkpoints. */
    public String hfName() {
        return hfNames.getFirst();
    }

    public static Architecture fromHfName(String name) {
        for (Architecture a : values()) {
            if (a.hfNames.contains(name)) {
                return a;
            }
        }
        throw new IllegalArgumentException("unsupported architecture '" + name + "'; supported: " + supportedNames());
    }

    /** Parses a CLI name such as {@code llama} or {@code gpt2}. */
    public static Architecture parse(String name) {
        for (Architecture a : values()) {
            if (a.name().equalsIgnoreCase(name)) {
                return a;
            }
        }
        throw new IllegalArgumentException("unknown architecture '" + name + "' (expected llama or gpt2)");
    }

    static String supportedNames() {
        return Arrays.stream(values()).flatMap(a -> a.hfNames.stream()).collect(Collectors.joining(", "));
    }
}
