package io.flover.model;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;

/**
 * Element types of the tensors Flover reads and computes with: plain floats (safetensors and GGUF), and ggml's block
 * formats (GGUF), where a row is cut into blocks of {@link #blockSize()} elements, each stored in
 * {@link #blockBytes()} bytes with its own scales.
 * {@link #dequantize} widens whole blocks to float32 exactly as ggml defines them (every product in float32, in
 * ggml's order), so the values agree bit for bit with llama.cpp's reference and gguf-py's {@code quants.py}.
 */
public enum DType {
    F32(0, 1, 4, "F32"),
    F16(1, 1, 2, "F16"),
    BF16(30, 1, 2, "BF16"),
    Q8_0(8, 32, 34, null),
    Q4_0(2, 32, 18, null),
    Q4_K(12, 256, 144, null),
    Q6_K(14, 256, 210, null);

    private static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort U16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final int ggmlId;
    private final int blockSize;
    private final int blockBytes;
    private final String safetensorsName;

    DType(int ggmlId, int blockSize, int blockBytes, String safetensorsName) {
        this.ggmlId = ggmlId;
        this.blockSize = blockSize;
        this.blockBytes = blockBytes;
        this.safetensorsName = safetensorsName;
    }

    /** The type's number in a GGUF tensor info ({@code ggml_type}). */
    public int ggmlId() {
        return ggmlId;
    }

    /** Size of one element in bytes, for the plain float types; block types have none (see {@link #bytes(long)}). */
    public int bytes() {
        if (quantized()) {
            throw new IllegalStateException(name() + " stores blocks of " + blockSize + " elements, not single ones");
        }
        return blockBytes;
    }

    /** The dtype's name in a safetensors header (plain types only). */
    public String safetensorsName() {
        return safetensorsName;
    }

    /** Parses a safetensors dtype name, or returns null for a type Flover does not read. */
    public static DType fromSafetensors(String name) {
        for (DType t : values()) {
            if (name.equals(t.safetensorsName)) {
                return t;
            }
        }
        return null;
    }

    /** Parses a user-facing name such as {@code f32}, {@code bf16}, {@code float16} or {@code q8_0}. */
    public static DType parse(String name) {
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "f32", "float32", "fp32" -> F32;
            case "f16", "float16", "fp16", "half" -> F16;
            case "bf16", "bfloat16" -> BF16;
            case "q8_0" -> Q8_0;
            case "q4_0" -> Q4_0;
            default -> throw new IllegalArgumentException("unknown dtype '" + name
                    + "' (expected f32, f16, bf16, q8_0 or q4_0)");
        };
    }

    /** Elements per block: 1 for plain floats. */
    public int blockSize() {
        return blockSize;
    }

    /** Bytes per block. */
    public int blockBytes() {
        return blockBytes;
    }

    /** Whether this is one of ggml's block-quantized formats. */
    public boolean quantized() {
        return blockSize > 1;
    }

    /** The type with this {@code ggml_type} number, or null if Flover does not read it. */
    public static DType byGgmlId(int id) {
        for (DType t : values()) {
            if (t.ggmlId == id) {
                return t;
            }
        }
        return null;
    }

    /** The names of the types Flover reads, for error messages. */
    public static String supportedNames() {
        return Arrays.stream(values()).map(Enum::name).collect(Collectors.joining(", "));
    }

    /** Bytes of {@code elements} elements, which must be whole blocks. */
    public long bytes(long elements) {
        if (elements % blockSize != 0) {
            throw new IllegalArgumentException(elements + " elements are not whole " + name() + " blocks of " + blockSize);
        }
        return Math.multiplyExact(elements / blockSize, (long) blockBytes);
    }

    /**
     * Widens {@code blocks} blocks starting at byte {@code offset} of {@code src} into {@code out[at..]}
     * ({@code blocks * blockSize()} floats).
     */
    public void dequantize(MemorySegment src, long offset, int blocks, float[] out, int at) {
        for (int b = 0; b < blocks; b++, offset += blockBytes, at += blockSize) {
            switch (this) {
                case F32 -> out[at] = src.get(F32_LE, offset);
                case F16 -> out[at] = half(src, offset);
                case BF16 -> out[at] = Float.intBitsToFloat((src.get(U16_LE, offset) & 0xFFFF) << 16);
                case Q8_0 -> q8_0(src, offset, out, at);
                case Q4_0 -> q4_0(src, offset, out, at);
                case Q4_K -> q4_k(src, offset, out, at);
                case Q6_K -> q6_k(src, offset, out, at);
            }
        }
    }

    /** Elements of a sub-block, which {@link #split} gives a scale and an offset of its own. */
    public int subBlockSize() {
        return switch (this) {
            case Q4_K -> 32;
            case Q6_K -> 16;
            default -> blockSize;
        };
    }

    /**
     * Splits {@code blocks} blocks of a block-quantized type, from byte {@code offset} of {@code src}, into an
     * integer code per element ({@code codes[0..]}) and a scale and an offset per sub-block of {@link #subBlockSize}
     * elements ({@code scales[0..]}, {@code offsets[0..]}): element i of sub-block s is
     * {@code codes[i] * scales[s] + offsets[s]}, where the product is exact in float32, so a multiply-add gives
     * {@link #dequantize}'s value bit for bit (but for the sign of a Q4_0 zero, which ggml takes from the scale).
     * Q8_0 and Q6_K codes are signed, their offsets 0; Q4_0 and Q4_K codes are nibbles, 0 to 15.
     */
    public void split(MemorySegment src, long offset, int blocks, byte[] codes, float[] scales, float[] offsets) {
        int subBlocks = blockSize / subBlockSize();
        for (int b = 0; b < blocks; b++, offset += blockBytes) {
            int at = b * blockSize;
            int s = b * subBlocks;
            switch (this) {
                case Q8_0 -> {
                    scales[s] = half(src, offset);
                    offsets[s] = 0;
                    for (int i = 0; i < 32; i++) {
                        codes[at + i] = src.get(ValueLayout.JAVA_BYTE, offset + 2 + i);
                    }
                }
                case Q4_0 -> {
                    float d = half(src, offset);
                    scales[s] = d;
                    offsets[s] = -8 * d;
                    for (int i = 0; i < 16; i++) {
                        int q = u8(src, offset + 2 + i);
                        codes[at + i] = (byte) (q & 0xF);
                        codes[at + i + 16] = (byte) (q >>> 4);
                    }
                }
                case Q4_K -> {
                    float d = half(src, offset);
                    float dmin = half(src, offset + 2);
                    for (int j = 0; j < 8; j++) {
                        scales[s + j] = d * q4kScale(src, offset + 4, j);
                        offsets[s + j] = -(dmin * q4kMin(src, offset + 4, j));
                        for (int l = 0; l < 32; l++) {
                            codes[at + j * 32 + l] = (byte) q4kCode(src, offset + 16, j, l);
                        }
                    }
                }
                case Q6_K -> {
                    float d = half(src, offset + 208);
                    for (int j = 0; j < 16; j++) {
                        scales[s + j] = d * src.get(ValueLayout.JAVA_BYTE, offset + 192 + j);
                        offsets[s + j] = 0;
                    }
                    for (int e = 0; e < 256; e++) {
                        codes[at + e] = (byte) q6kCode(src, offset, e);
                    }
                }
                default -> throw new UnsupportedOperationException(name() + " is not block-quantized");
            }
        }
    }

    /**
     * Writes {@code blocks} blocks of {@code src[at..]} at byte {@code offset} of {@code dst}, rounding as ggml's
     * reference quantizers (and gguf-py's) do. Flover writes F32, F16, BF16, Q8_0 and Q4_0.
     */
    public void quantize(float[] src, int at, int blocks, MemorySegment dst, long offset) {
        for (int b = 0; b < blocks; b++, offset += blockBytes, at += blockSize) {
            switch (this) {
                case F32 -> dst.set(F32_LE, offset, src[at]);
                case F16 -> dst.set(U16_LE, offset, Float.floatToFloat16(src[at]));
                case BF16 -> dst.set(U16_LE, offset, SafetensorsWriter.toBf16(src[at]));
                case Q8_0 -> toQ8_0(src, at, dst, offset);
                case Q4_0 -> toQ4_0(src, at, dst, offset);
                default -> throw new UnsupportedOperationException("Flover does not quantize to " + name()
                        + " (it writes F32, F16, BF16, Q8_0 and Q4_0)");
            }
        }
    }

    /** Scale amax / 127, each element rounded half away from zero. */
    private static void toQ8_0(float[] x, int at, MemorySegment dst, long o) {
        float amax = 0;
        for (int i = 0; i < 32; i++) {
            amax = Math.max(amax, Math.abs(x[at + i]));
        }
        float d = amax / 127;
        float id = d != 0 ? 1 / d : 0;
        dst.set(U16_LE, o, Float.floatToFloat16(d));
        for (int i = 0; i < 32; i++) {
            dst.set(ValueLayout.JAVA_BYTE, o + 2 + i, (byte) roundHalfAway(x[at + i] * id));
        }
    }

    /**
     * Scale (the element of largest magnitude, the first of ties) / -8; q = trunc(x / d + 8.5) clamped to 15, the
     * sum taken in double and rounded to float before the truncation, as gguf-py does.
     */
    private static void toQ4_0(float[] x, int at, MemorySegment dst, long o) {
        float max = 0;
        for (int i = 0; i < 32; i++) {
            if (Math.abs(x[at + i]) > Math.abs(max)) {
                max = x[at + i];
            }
        }
        float d = max / -8;
        float id = d != 0 ? 1 / d : 0;
        dst.set(U16_LE, o, Float.floatToFloat16(d));
        for (int i = 0; i < 16; i++) {
            int lo = Math.min(15, (int) (float) ((double) x[at + i] * id + 8.5));
            int hi = Math.min(15, (int) (float) ((double) x[at + i + 16] * id + 8.5));
            dst.set(ValueLayout.JAVA_BYTE, o + 2 + i, (byte) (lo | (hi << 4)));
        }
    }

    private static float roundHalfAway(float v) {
        float a = Math.abs(v);
        float floor = (float) Math.floor(a);
        return Math.copySign(floor + (a - floor >= 0.5f ? 1 : 0), v);
    }

    private static float half(MemorySegment src, long offset) {
        return Float.float16ToFloat(src.get(U16_LE, offset));
    }

    private static int u8(MemorySegment src, long offset) {
        return src.get(ValueLayout.JAVA_BYTE, offset) & 0xFF;
    }

    /** d (f16), then 32 signed bytes q: x = q * d. */
    private static void q8_0(MemorySegment src, long o, float[] out, int at) {
        float d = half(src, o);
        for (int i = 0; i < 32; i++) {
            out[at + i] = src.get(ValueLayout.JAVA_BYTE, o + 2 + i) * d;
        }
    }

    /** d (f16), then 16 bytes of nibbles: element i in the low nibble of byte i, element i + 16 in its high one. */
    private static void q4_0(MemorySegment src, long o, float[] out, int at) {
        float d = half(src, o);
        for (int i = 0; i < 16; i++) {
            int q = u8(src, o + 2 + i);
            out[at + i] = d * ((q & 0xF) - 8);
            out[at + i + 16] = d * ((q >>> 4) - 8);
        }
    }

    /**
     * d, dmin (f16), 12 bytes of eight 6-bit scales and mins, 128 bytes of nibbles: each 64 elements take 32 bytes,
     * low nibbles first; sub-block j of 32 is x = (d * scale_j) * q - dmin * min_j.
     */
    private static void q4_k(MemorySegment src, long o, float[] out, int at) {
        float d = half(src, o);
        float dmin = half(src, o + 2);
        for (int j = 0; j < 8; j++) {
            float ds = d * q4kScale(src, o + 4, j);
            float dm = dmin * q4kMin(src, o + 4, j);
            for (int l = 0; l < 32; l++) {
                out[at + j * 32 + l] = ds * q4kCode(src, o + 16, j, l) - dm;
            }
        }
    }

    /** The 6-bit scale of Q4_K sub-block {@code j}, from the 12 bytes at {@code scales}. */
    private static int q4kScale(MemorySegment src, long scales, int j) {
        return j < 4 ? u8(src, scales + j) & 63 : (u8(src, scales + j + 4) & 0xF) | ((u8(src, scales + j - 4) >>> 6) << 4);
    }

    /** The 6-bit min of Q4_K sub-block {@code j}. */
    private static int q4kMin(MemorySegment src, long scales, int j) {
        return j < 4 ? u8(src, scales + j + 4) & 63 : (u8(src, scales + j + 4) >>> 4) | ((u8(src, scales + j) >>> 6) << 4);
    }

    /** Nibble {@code l} of Q4_K sub-block {@code j}: each 64 elements take 32 bytes of {@code qs}, low nibbles first. */
    private static int q4kCode(MemorySegment src, long qs, int j, int l) {
        return (u8(src, qs + (j / 2) * 32L + l) >>> ((j % 2) * 4)) & 0xF;
    }

    /**
     * 128 bytes of low nibbles, 64 bytes of high bit pairs, 16 signed scales, d (f16); per 128 elements, element
     * l + 32 * s takes nibble s / 2 of ql byte l (+ 32 for odd s) and bit pair s of qh byte l: x = (d * scale) * (q - 32),
     * with one scale per 16 elements.
     */
    private static void q6_k(MemorySegment src, long o, float[] out, int at) {
        float d = half(src, o + 208);
        for (int e = 0; e < 256; e++) {
            out[at + e] = d * src.get(ValueLayout.JAVA_BYTE, o + 192 + e / 16) * q6kCode(src, o, e);
        }
    }

    /**
     * Q6_K's code of element {@code e} (-32 to 31): per 128 elements, element l + 32 * s takes nibble s / 2 of ql byte
     * l (+ 32 for odd s) and bit pair s of qh byte l.
     */
    private static int q6kCode(MemorySegment src, long o, int e) {
        int half = e / 128;
        int s = e % 128 / 32;
        int l = e % 32;
        int low = u8(src, o + half * 64L + l + (s % 2) * 32) >>> ((s / 2) * 4) & 0xF;
        int high = u8(src, o + 128 + half * 32L + l) >>> (2 * s) & 3;
        return (low | high << 4) - 32;
    }
}
