package io.flover.model;

import java.util.Locale;

/** Element types of checkpoint tensors that Flover reads and computes with. */
public enum DType {
    F32(4, "F32"),
    F16(2, "F16"),
    BF16(2, "BF16");

    private final int bytes;
    private final String safetensorsName;

    DType(int bytes, String safetensorsName) {
        this.bytes = bytes;
        this.safetensorsName = safetensorsName;
    }

    /** Size of one element in bytes. */
    public int bytes() {
        return bytes;
    }

    /** The dtype's name in a safetensors header. */
    public String safetensorsName() {
        return safetensorsName;
    }

    /** Parses a safetensors dtype name, or returns null for a type Flover does not read. */
    public static DType fromSafetensors(String name) {
        for (DType t : values()) {
            if (t.safetensorsName.equals(name)) {
                return t;
            }
        }
        return null;
    }

    /** Parses a user-facing name such as {@code f32}, {@code bf16} or {@code float16}. */
    public static DType parse(String name) {
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "f32", "float32", "fp32" -> F32;
            case "f16", "float16", "fp16", "half" -> F16;
            case "bf16", "bfloat16" -> BF16;
            default -> throw new IllegalArgumentException("unknown dtype '" + name + "' (expected f32, f16 or bf16)");
        };
    }
}
