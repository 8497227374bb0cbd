package io.flover.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Writes a safetensors file from tensors produced on demand, so a checkpoint larger than the heap can be
 * written one tensor at a time.
 */
public final class SafetensorsWriter {
    /** A tensor to write: its values are produced when the file body is written. */
    public interface Source {
        /** Fills {@code out} (length = number of elements) with the tensor's values in row-major order. */
        void fill(float[] out);
    }

    private record Entry(String name, long[] shape, Source source) {
    }

    private final DType dtype;
    private final List<Entry> entries = new ArrayList<>();

    public SafetensorsWriter(DType dtype) {
        if (dtype.safetensorsName() == null) {
            throw new IllegalArgumentException("safetensors files hold F32, F16 or BF16, not " + dtype);
        }
        this.dtype = dtype;
    }

    public SafetensorsWriter add(String name, long[] shape, Source source) {
        entries.add(new Entry(name, shape.clone(), source));
        return this;
    }

    public void write(Path file) throws IOException {
        Map<String, Object> header = new LinkedHashMap<>();
        long offset = 0;
        for (Entry e : entries) {
            long bytes = Tensor.numElements(e.shape) * dtype.bytes();
            header.put(e.name, Map.of("dtype", dtype.safetensorsName(), "shape", e.shape,
                    "data_offsets", List.of(offset, offset + bytes)));
            offset += bytes;
        }
        header.put("__metadata__", Map.of("format", "pt"));
        byte[] json = new ObjectMapper().writeValueAsString(header).getBytes(StandardCharsets.UTF_8);
        int padded = (json.length + 7) / 8 * 8; // the format aligns the data section to 8 bytes with spaces
        try (OutputStream out = new BufferedOutputStream(Files.newOutputStream(file), 1 << 20)) {
            ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(padded);
            out.write(len.array());
            out.write(json);
            out.write(" ".repeat(padded - json.length).getBytes(StandardCharsets.US_ASCII));
            for (Entry e : entries) {
                float[] values = new float[Math.toIntExact(Tensor.numElements(e.shape))];
                e.source.fill(values);
                out.write(encode(values));
            }
        }
    }

    private byte[] encode(float[] values) {
        ByteBuffer b = ByteBuffer.allocate(values.length * dtype.bytes()).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : values) {
            switch (dtype) {
                case F32 -> b.putFloat(v);
                case F16 -> b.putShort(Float.floatToFloat16(v));
                case BF16 -> b.putShort(toBf16(v));
                default -> throw new IllegalStateException(dtype.name());
            }
        }
        return b.array();
    }

    /** Rounds to the nearest bfloat16, ties to even (what PyTorch does). */
    public static short toBf16(float v) {
        int bits = Float.floatToRawIntBits(v);
        if (Float.isNaN(v)) {
            return (short) ((bits >>> 16) | 0x40);
        }
        int rounded = bits + 0x7FFF + ((bits >>> 16) & 1);
        return (short) (rounded >>> 16);
    }
}
