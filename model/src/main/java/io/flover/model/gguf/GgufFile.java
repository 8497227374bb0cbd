package io.flover.model.gguf;

import io.flover.model.DType;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/**
 * A GGUF file (versions 2 and 3) read through a memory map: its metadata key/values and the infos of its
 * tensors, whose data are views into the mapping. Closing it unmaps the file.
 *
 * <p>Metadata values are boxed as Java values: unsigned 8- and 16-bit integers widen to {@code Integer}, 32-bit
 * ones to {@code Long}; signed integers keep their width ({@code Byte}, {@code Short}, {@code Integer},
 * {@code Long}); {@code Float}, {@code Double}, {@code Boolean}, {@code String}; arrays are {@code List}s.
 */
public final class GgufFile implements AutoCloseable {
    /** "GGUF" read as a little-endian int. */
    private static final int MAGIC = 0x46554747;
    private static final long MAX_STRING_BYTES = 1L << 30;
    private static final int DEFAULT_ALIGNMENT = 32;
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfDouble F64 = ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /**
     * One tensor of the file.
     *
     * @param shape dimensions outermost first, as in PyTorch and safetensors (GGUF lists them innermost first)
     * @param data the tensor's bytes in the mapping
     */
    public record TensorInfo(String name, DType type, long[] shape, MemorySegment data) {
        public TensorInfo {
            shape = shape.clone();
        }

        @Override
        public long[] shape() {
            return shape.clone();
        }

        public long numElements() {
            long n = 1;
            for (long d : shape) {
                n = Math.multiplyExact(n, d);
            }
            return n;
        }
    }

    private final Path file;
    private final Arena arena;
    private final int version;
    private final Map<String, Object> metadata;
    private final Map<String, TensorInfo> tensors;

    private GgufFile(Path file, Arena arena, int version, Map<String, Object> metadata, Map<String, TensorInfo> tensors) {
        this.file = file;
        this.arena = arena;
        this.version = version;
        this.metadata = Collections.unmodifiableMap(metadata);
        this.tensors = Collections.unmodifiableMap(tensors);
    }

    /** Maps {@code file} and reads its header; errors name the file and the key or tensor at fault. */
    public static GgufFile open(Path file) throws IOException {
        Arena arena = Arena.ofShared();
        try {
            MemorySegment whole;
            try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
                whole = ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), arena);
            }
            return new Parser(file, whole).parse(arena);
        } catch (IOException | RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /**
     * The GGUF file a model path names: the path itself if it is a {@code .gguf} file, or the one {@code .gguf} file
     * of a directory without safetensors weights; null for a Hugging Face directory.
     */
    public static Path inModel(Path model) throws IOException {
        if (Files.isRegularFile(model)) {
            if (!model.getFileName().toString().endsWith(".gguf")) {
                throw new IOException(model + ": a model is a directory or a .gguf file");
            }
            return model;
        }
        if (!Files.isDirectory(model) || Files.exists(model.resolve("model.safetensors"))
                || Files.exists(model.resolve("model.safetensors.index.json"))) {
            return null;
        }
        List<Path> found;
        try (Stream<Path> files = Files.list(model)) {
            found = files.filter(f -> f.getFileName().toString().endsWith(".gguf") && Files.isRegularFile(f)).sorted().toList();
        }
        if (found.size() > 1) {
            throw new IOException(model + " holds several GGUF files (" + found.stream().map(f -> f.getFileName().toString())
                    .collect(Collectors.joining(", ")) + "); name one with --model FILE.gguf");
        }
        return found.isEmpty() ? null : found.getFirst();
    }

    public Path file() {
        return file;
    }

    public int version() {
        return version;
    }

    /** All metadata, in file order. */
    public Map<String, Object> metadata() {
        return metadata;
    }

    /** All tensors by name, in file order. */
    public Map<String, TensorInfo> tensors() {
        return tensors;
    }

    public boolean has(String key) {
        return metadata.containsKey(key);
    }

    /** A metadata string; fails naming the file and key if it is missing or not a string. */
    public String string(String key) {
        return require(key, String.class, "a string");
    }

    /** A metadata integer of any width and signedness; fails naming the file and key otherwise. */
    public long integer(String key) {
        return require(key, Number.class, "an integer").longValue();
    }

    /** {@link #integer} where present, else {@code fallback}. */
    public long integer(String key, long fallback) {
        return has(key) ? integer(key) : fallback;
    }

    /** A metadata float or integer as a double; fails naming the file and key otherwise. */
    public double number(String key, double fallback) {
        return has(key) ? require(key, Number.class, "a number").doubleValue() : fallback;
    }

    public boolean bool(String key, boolean fallback) {
        return has(key) ? require(key, Boolean.class, "a bool") : fallback;
    }

    /** A metadata array; fails naming the file and key if it is missing or not an array. */
    public List<?> array(String key) {
        return require(key, List.class, "an array");
    }

    /** An error about this file. */
    public IOException error(String what) {
        return new IOException(file + ": " + what);
    }

    private <T> T require(String key, Class<T> type, String what) {
        Object v = metadata.get(key);
        if (!type.isInstance(v)) {
            throw new IllegalArgumentException(file + ": metadata " + key + (v == null ? " is missing"
                    : " is not " + what + " (" + v.getClass().getSimpleName() + ")"));
        }
        return type.cast(v);
    }

    @Override
    public void close() {
        arena.close();
    }

    /** Reads the header front to back; every read checks the bounds, so a truncated file is named as such. */
    private static final class Parser {
        private final Path file;
        private final MemorySegment data;
        private long pos;
        /** What is being read, for errors. */
        private String at = "header";

        Parser(Path file, MemorySegment data) {
            this.file = file;
            this.data = data;
        }

        GgufFile parse(Arena arena) throws IOException {
            if (data.byteSize() < 4 || data.get(I32, 0) != MAGIC) {
                throw new IOException(file + ": not a GGUF file (bad magic)");
            }
            pos = 4;
            int version = (int) u32();
            if (version != 2 && version != 3) {
                throw new IOException(file + ": GGUF version " + version + " is not supported (2 and 3 are)");
            }
            long tensorCount = count(u64(), "tensor count");
            long kvCount = count(u64(), "metadata count");
            Map<String, Object> metadata = new LinkedHashMap<>();
            for (long i = 0; i < kvCount; i++) {
                at = "metadata entry " + i;
                String key = string();
                at = "metadata " + key;
                metadata.put(key, value((int) u32()));
            }
            long alignment = DEFAULT_ALIGNMENT;
            Object a = metadata.get("general.alignment");
            if (a != null) {
                if (!(a instanceof Number n) || n.longValue() <= 0 || Long.bitCount(n.longValue()) != 1) {
                    throw new IOException(file + ": metadata general.alignment " + a + " is not a power of two");
                }
                alignment = n.longValue();
            }
            record Raw(String name, DType type, long[] shape, long offset) {
            }
            List<Raw> raws = new ArrayList<>();
            for (long i = 0; i < tensorCount; i++) {
                at = "tensor info " + i;
                String name = string();
                at = "tensor " + name;
                int dims = (int) u32();
                if (dims < 1 || dims > 4) {
                    throw new IOException(file + ": tensor " + name + " has " + dims + " dimensions (1 to 4 allowed)");
                }
                long[] shape = new long[dims];
                for (int d = 0; d < dims; d++) {
                    shape[dims - 1 - d] = u64();
                    if (shape[dims - 1 - d] < 0) {
                        throw new IOException(file + ": tensor " + name + " has a dimension over 2^63");
                    }
                }
                int typeId = (int) u32();
                DType type = DType.byGgmlId(typeId);
                if (type == null) {
                    throw new IOException(file + ": tensor " + name + " has ggml type " + typeId
                            + ", which Flover does not read (supported: " + DType.supportedNames() + ")");
                }
                raws.add(new Raw(name, type, shape, u64()));
            }
            long dataStart = Math.ceilDiv(pos, alignment) * alignment;
            Map<String, TensorInfo> tensors = new LinkedHashMap<>();
            for (Raw r : raws) {
                long elements;
                long bytes;
                try {
                    elements = new TensorInfo(r.name, r.type, r.shape, MemorySegment.NULL).numElements();
                    if (r.shape[r.shape.length - 1] % r.type.blockSize() != 0) {
                        throw new IOException(file + ": tensor " + r.name + " has rows of " + r.shape[r.shape.length - 1]
                                + " elements, not a multiple of the " + r.type + " block size " + r.type.blockSize());
                    }
                    bytes = r.type.bytes(elements);
                } catch (ArithmeticException e) {
                    throw new IOException(file + ": tensor " + r.name + " has an impossibly large shape "
                            + Arrays.toString(r.shape), e);
                }
                if (r.offset % alignment != 0) {
                    throw new IOException(file + ": tensor " + r.name + " starts at data offset " + r.offset
                            + ", which is not a multiple of the alignment " + alignment);
                }
                if (r.offset < 0 || dataStart + r.offset > data.byteSize() - bytes) {
                    throw new IOException(file + ": tensor " + r.name + " spans bytes [" + (dataStart + r.offset) + ", "
                            + (dataStart + r.offset + bytes) + ") but the file has " + data.byteSize() + " (truncated file?)");
                }
                if (tensors.put(r.name, new TensorInfo(r.name, r.type, r.shape,
                        data.asSlice(dataStart + r.offset, bytes))) != null) {
                    throw new IOException(file + ": tensor " + r.name + " appears twice");
                }
            }
            return new GgufFile(file, arena, version, metadata, tensors);
        }

        private Object value(int type) throws IOException {
            return switch (type) {
                case 0 -> Byte.toUnsignedInt(data.get(ValueLayout.JAVA_BYTE, advance(1)));
                case 1 -> data.get(ValueLayout.JAVA_BYTE, advance(1));
                case 2 -> Short.toUnsignedInt(data.get(I16, advance(2)));
                case 3 -> data.get(I16, advance(2));
                case 4 -> u32();
                case 5 -> data.get(I32, advance(4));
                case 6 -> data.get(F32, advance(4));
                case 7 -> {
                    byte b = data.get(ValueLayout.JAVA_BYTE, advance(1));
                    if (b != 0 && b != 1) {
                        throw new IOException(file + ": " + at + " is a bool of value " + b);
                    }
                    yield b == 1;
                }
                case 8 -> string();
                case 9 -> {
                    int elementType = (int) u32();
                    long n = count(u64(), "array length");
                    if (elementType == 9) {
                        throw new IOException(file + ": " + at + " is an array of arrays, which GGUF readers do not take");
                    }
                    List<Object> list = new ArrayList<>((int) Math.min(n, 1 << 20));
                    for (long i = 0; i < n; i++) {
                        list.add(value(elementType));
                    }
                    yield Collections.unmodifiableList(list);
                }
                case 10, 11 -> u64();
                case 12 -> data.get(F64, advance(8));
                default -> throw new IOException(file + ": " + at + " has value type " + type + ", which GGUF does not define");
            };
        }

        private long u32() throws IOException {
            return Integer.toUnsignedLong(data.get(I32, advance(4)));
        }

        private long u64() throws IOException {
            return data.get(I64, advance(8));
        }

        private String string() throws IOException {
            long n = u64();
            if (n < 0 || n > MAX_STRING_BYTES) {
                throw new IOException(file + ": " + at + " has a string of " + Long.toUnsignedString(n) + " bytes");
            }
            long from = advance(n);
            return new String(data.asSlice(from, n).toArray(ValueLayout.JAVA_BYTE), StandardCharsets.UTF_8);
        }

        /** A count that has to fit in what is left of the file (every element takes at least a byte). */
        private long count(long n, String what) throws IOException {
            if (n < 0 || n > data.byteSize() - pos) {
                throw new IOException(file + ": " + at + " has a " + what + " of " + Long.toUnsignedString(n)
                        + ", more than the file could hold (truncated or corrupt file?)");
            }
            return n;
        }

        /** Moves past {@code n} bytes, returning where they start. */
        private long advance(long n) throws IOException {
            if (n > data.byteSize() - pos) {
                throw new IOException(file + ": truncated file: " + at + " runs past its end (" + data.byteSize()
                        + " bytes)");
            }
            long start = pos;
            pos += n;
            return start;
        }
    }
}
