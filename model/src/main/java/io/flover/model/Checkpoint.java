package io.flover.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.flover.model.gguf.GgufFile;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The tensors of a model under their Hugging Face names: {@code model.safetensors}, or the shards listed by
 * {@code model.safetensors.index.json}, or a GGUF file (see {@link GgufLayout}). Files are memory-mapped (any
 * size) and tensors are views into the mapping, so opening a checkpoint reads only headers. Closing it unmaps
 * every file: tensors must not be used afterwards.
 */
public final class Checkpoint implements AutoCloseable {
    public static final String SINGLE_FILE = "model.safetensors";
    public static final String INDEX_FILE = "model.safetensors.index.json";

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final long MAX_HEADER_BYTES = 100L << 20;

    private final Arena arena = Arena.ofShared();
    private final Map<String, Tensor> tensors = new LinkedHashMap<>();
    private final Map<String, Path> fileOf = new LinkedHashMap<>();
    private GgufFile gguf;

    private Checkpoint() {
    }

    /** Opens the weights of a model directory or GGUF file. */
    public static Checkpoint open(Path modelDir) throws IOException {
        Checkpoint c = new Checkpoint();
        try {
            Path ggufFile = GgufFile.inModel(modelDir);
            if (ggufFile != null) {
                c.gguf = GgufFile.open(ggufFile);
                GgufLayout.tensors(c.gguf, GgufLayout.config(c.gguf), c.arena).forEach((name, t) -> {
                    c.tensors.put(name, t);
                    c.fileOf.put(name, ggufFile);
                });
                return c;
            }
            Path single = modelDir.resolve(SINGLE_FILE);
            Path index = modelDir.resolve(INDEX_FILE);
            if (Files.isRegularFile(single)) {
                c.map(single, null);
            } else if (Files.isRegularFile(index)) {
                Map<Path, Set<String>> shards = readIndex(index);
                for (Map.Entry<Path, Set<String>> shard : shards.entrySet()) {
                    c.map(shard.getKey(), shard.getValue());
                }
            } else {
                throw new NoSuchFileException(modelDir + ": no " + SINGLE_FILE + " or " + INDEX_FILE);
            }
            return c;
        } catch (IOException | RuntimeException e) {
            c.close();
            throw e;
        }
    }

    /** Whether the checkpoint holds a tensor of this name. */
    public boolean contains(String name) {
        return tensors.containsKey(name);
    }

    /** The tensor of this name; fails naming the tensor and the checkpoint files if it is absent. */
    public Tensor tensor(String name) {
        Tensor t = tensors.get(name);
        if (t == null) {
            throw new IllegalArgumentException("missing tensor " + name + " in " + describeFiles());
        }
        return t;
    }

    /** The tensor of this name with exactly the given shape, or an error naming the file, tensor and shapes. */
    public Tensor tensor(String name, long... shape) {
        Tensor t = tensor(name);
        try {
            return t.requireShape(shape);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(fileOf.get(name) + ": " + e.getMessage(), e);
        }
    }

    /**
     * Whether GPT-2's {@code Conv1D} projections are stored {@code [out, in]}, as {@code Linear} weights are: GGUF
     * files hold them so (llama.cpp's converter transposes them, and a block-quantized matrix cannot be transposed
     * without widening it), Hugging Face checkpoints as {@code [in, out]}.
     */
    public boolean conv1dAsLinear() {
        return gguf != null;
    }

    /** Names of all tensors, in file order. */
    public Set<String> names() {
        return java.util.Collections.unmodifiableSet(tensors.keySet());
    }

    /** The dtype that holds most of the weights (GGUF files mix types: Q4_K_M keeps some tensors in Q6_K, norms in F32). */
    public DType mainDtype() {
        Map<DType, Long> elements = new java.util.EnumMap<>(DType.class);
        tensors.values().forEach(t -> elements.merge(t.dtype(), t.numElements(), Long::sum));
        return elements.entrySet().stream().max(Map.Entry.comparingByValue()).orElseThrow().getKey();
    }

    /** Total elements of all tensors. */
    public long parameterCount() {
        return tensors.values().stream().mapToLong(Tensor::numElements).sum();
    }

    /** Total bytes of tensor data. */
    public long dataBytes() {
        return tensors.values().stream().mapToLong(t -> t.data().byteSize()).sum();
    }

    @Override
    public void close() {
        arena.close();
        if (gguf != null) {
            gguf.close();
        }
    }

    private String describeFiles() {
        List<String> names = new ArrayList<>();
        fileOf.values().stream().distinct().forEach(p -> names.add(p.toString()));
        return names.isEmpty() ? "(no files)" : String.join(", ", names);
    }

    private static Map<Path, Set<String>> readIndex(Path index) throws IOException {
        JsonNode root;
        try {
            root = JSON.readTree(index.toFile());
        } catch (IOException e) {
            throw new IOException(index + ": not valid JSON: " + e.getMessage(), e);
        }
        JsonNode map = root.get("weight_map");
        if (map == null || !map.isObject()) {
            throw new IOException(index + ": no weight_map object");
        }
        Map<Path, Set<String>> shards = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = map.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            Path shard = index.resolveSibling(e.getValue().asText());
            shards.computeIfAbsent(shard, k -> new java.util.HashSet<>()).add(e.getKey());
        }
        return shards;
    }

    /** Maps one safetensors file; {@code expected}, when given, are the tensors the index says it holds. */
    private void map(Path file, Set<String> expected) throws IOException {
        MemorySegment whole;
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            whole = ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), arena);
        } catch (NoSuchFileException e) {
            throw new NoSuchFileException(expected == null ? file.toString() : file + " (listed in " + INDEX_FILE + ")");
        }
        long size = whole.byteSize();
        if (size < 8) {
            throw new IOException(file + ": truncated safetensors file (" + size + " bytes)");
        }
        long headerLen = whole.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0);
        if (headerLen <= 0 || headerLen > MAX_HEADER_BYTES || 8 + headerLen > size) {
            throw new IOException(file + ": bad safetensors header length " + headerLen + " for a file of " + size + " bytes");
        }
        byte[] headerBytes = whole.asSlice(8, headerLen).toArray(ValueLayout.JAVA_BYTE);
        JsonNode header;
        try {
            header = JSON.readTree(new String(headerBytes, StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new IOException(file + ": safetensors header is not valid JSON: " + e.getMessage(), e);
        }
        long dataStart = 8 + headerLen;
        long dataLen = size - dataStart;
        for (Iterator<Map.Entry<String, JsonNode>> it = header.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            String name = e.getKey();
            if (name.equals("__metadata__")) {
                continue;
            }
            if (expected != null && !expected.contains(name)) {
                continue; // the index assigns this tensor to another shard
            }
            tensors.put(name, readTensor(file, name, e.getValue(), whole, dataStart, dataLen));
            fileOf.put(name, file);
        }
        if (expected != null) {
            for (String name : expected) {
                if (!tensors.containsKey(name)) {
                    throw new IOException(file + ": tensor " + name + " listed in " + INDEX_FILE + " is not in the file");
                }
            }
        }
    }

    private static Tensor readTensor(Path file, String name, JsonNode info, MemorySegment whole, long dataStart, long dataLen)
            throws IOException {
        String dtypeName = info.path("dtype").asText();
        DType dtype = DType.fromSafetensors(dtypeName);
        if (dtype == null) {
            throw new IOException(file + ": tensor " + name + " has dtype '" + dtypeName
                    + "', which Flover does not read (supported: F32, F16, BF16)");
        }
        JsonNode shapeNode = info.get("shape");
        JsonNode offsets = info.get("data_offsets");
        if (shapeNode == null || !shapeNode.isArray() || offsets == null || offsets.size() != 2) {
            throw new IOException(file + ": tensor " + name + " lacks a shape or data_offsets");
        }
        long[] shape = new long[shapeNode.size()];
        for (int i = 0; i < shape.length; i++) {
            shape[i] = shapeNode.get(i).asLong(-1);
            if (shape[i] < 0) {
                throw new IOException(file + ": tensor " + name + " has a negative dimension");
            }
        }
        long begin = offsets.get(0).asLong(-1);
        long end = offsets.get(1).asLong(-1);
        if (begin < 0 || end < begin || end > dataLen) {
            throw new IOException(file + ": tensor " + name + " spans bytes [" + begin + ", " + end
                    + ") but the file holds only " + dataLen + " data bytes (truncated file?)");
        }
        long expectedBytes;
        try {
            expectedBytes = dtype.bytes(Tensor.numElements(shape));
        } catch (ArithmeticException e) {
            throw new IOException(file + ": tensor " + name + " has an impossibly large shape "
                    + java.util.Arrays.toString(shape), e);
        }
        if (end - begin != expectedBytes) {
            throw new IOException(file + ": tensor " + name + " has " + (end - begin) + " bytes, but its shape "
                    + java.util.Arrays.toString(shape) + " of " + dtype + " needs " + expectedBytes);
        }
        return new Tensor(name, dtype, shape, whole.asSlice(dataStart + begin, end - begin));
    }
}
