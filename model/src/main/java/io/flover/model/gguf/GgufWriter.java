package io.flover.model.gguf;

import io.flover.model.DType;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Writes a GGUF v3 file: metadata, then tensors quantized row by row from float32 as {@link DType#quantize}
 * rounds, each at an offset aligned to 32 bytes.
 */
public final class GgufWriter {
    private static final int ALIGNMENT = 32;

    /** Fills {@code out} with row {@code row} of a tensor (its innermost dimension), as float32. */
    @FunctionalInterface
    public interface Rows {
        void row(long row, float[] out);
    }

    private record Entry(int type, Object value) {
    }

    private record PendingTensor(String name, DType type, long[] shape, Rows rows) {
    }

    private final Map<String, Entry> metadata = new LinkedHashMap<>();
    private final List<PendingTensor> tensors = new ArrayList<>();

    public GgufWriter string(String key, String value) {
        metadata.put(key, new Entry(8, value));
        return this;
    }

    public GgufWriter u32(String key, long value) {
        metadata.put(key, new Entry(4, value));
        return this;
    }

    public GgufWriter f32(String key, float value) {
        metadata.put(key, new Entry(6, value));
        return this;
    }

    public GgufWriter bool(String key, boolean value) {
        metadata.put(key, new Entry(7, value));
        return this;
    }

    public GgufWriter strings(String key, List<String> values) {
        metadata.put(key, new Entry(9, new Entry(8, List.copyOf(values))));
        return this;
    }

    public GgufWriter i32s(String key, List<Integer> values) {
        metadata.put(key, new Entry(9, new Entry(5, List.copyOf(values))));
        return this;
    }

    /** A tensor of {@code shape} (outermost first) stored as {@code type}, its rows taken from {@code rows}. */
    public GgufWriter tensor(String name, DType type, long[] shape, Rows rows) {
        long cols = shape[shape.length - 1];
        if (cols % type.blockSize() != 0) {
            throw new IllegalArgumentException("tensor " + name + " has rows of " + cols + " elements, not whole "
                    + type + " blocks of " + type.blockSize());
        }
        tensors.add(new PendingTensor(name, type, shape.clone(), rows));
        return this;
    }

    public void write(Path file) throws IOException {
        Header h = new Header();
        h.i32(0x46554747).i32(3).i64(tensors.size()).i64(metadata.size());
        metadata.forEach((key, e) -> {
            h.string(key).i32(e.type);
            h.value(e.type, e.value);
        });
        long offset = 0;
        List<Long> offsets = new ArrayList<>();
        for (PendingTensor t : tensors) {
            h.string(t.name).i32(t.shape.length);
            for (int d = t.shape.length - 1; d >= 0; d--) {
                h.i64(t.shape[d]);
            }
            h.i32(t.type.ggmlId()).i64(offset);
            offsets.add(offset);
            offset = align(offset + t.type.bytes(elements(t.shape)));
        }
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING); Arena arena = Arena.ofConfined()) {
            ByteBuffer header = h.bytes();
            long dataStart = align(header.remaining());
            writeFully(ch, header, 0);
            for (int i = 0; i < tensors.size(); i++) {
                PendingTensor t = tensors.get(i);
                int cols = Math.toIntExact(t.shape[t.shape.length - 1]);
                long rows = elements(t.shape) / cols;
                int rowBytes = Math.toIntExact(t.type.bytes(cols));
                float[] row = new float[cols];
                MemorySegment out = arena.allocate(rowBytes);
                long at = dataStart + offsets.get(i);
                for (long r = 0; r < rows; r++, at += rowBytes) {
                    t.rows.row(r, row);
                    t.type.quantize(row, 0, cols / t.type.blockSize(), out, 0);
                    writeFully(ch, out.asByteBuffer(), at);
                }
            }
            // Pads the last tensor, so that every tensor's bytes lie inside the file whatever its size.
            writeFully(ch, ByteBuffer.allocate(Math.toIntExact(dataStart + offset - ch.size())), ch.size());
        }
    }

    private static void writeFully(FileChannel ch, ByteBuffer b, long at) throws IOException {
        while (b.hasRemaining()) {
            at += ch.write(b, at);
        }
    }

    private static long align(long n) {
        return Math.ceilDiv(n, ALIGNMENT) * ALIGNMENT;
    }

    private static long elements(long[] shape) {
        long n = 1;
        for (long d : shape) {
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    /** The header bytes, growing as needed. */
    private static final class Header {
        private ByteBuffer b = ByteBuffer.allocate(1 << 16).order(ByteOrder.LITTLE_ENDIAN);

        private Header room(int n) {
            if (b.remaining() < n) {
                ByteBuffer bigger = ByteBuffer.allocate(Math.max(b.capacity() * 2, b.position() + n))
                        .order(ByteOrder.LITTLE_ENDIAN);
                b.flip();
                bigger.put(b);
                b = bigger;
            }
            return this;
        }

        Header i32(int v) {
            room(4).b.putInt(v);
            return this;
        }

        Header i64(long v) {
            room(8).b.putLong(v);
            return this;
        }

        Header string(String s) {
            byte[] bytes = s.getBytes(StandardCharsets.UTF_8);
            i64(bytes.length);
            room(bytes.length).b.put(bytes);
            return this;
        }

        void value(int type, Object v) {
            switch (type) {
                case 4 -> i32((int) (long) (Long) v);
                case 5 -> i32((Integer) v);
                case 6 -> room(4).b.putFloat((Float) v);
                case 7 -> room(1).b.put((byte) ((Boolean) v ? 1 : 0));
                case 8 -> string((String) v);
                case 9 -> {
                    Entry inner = (Entry) v;
                    List<?> list = (List<?>) inner.value;
                    i32(inner.type).i64(list.size());
                    list.forEach(x -> value(inner.type, x));
                }
                default -> throw new IllegalStateException("metadata type " + type);
            }
        }

        ByteBuffer bytes() {
            return b.duplicate().flip();
        }
    }
}
