package io.flover.model.gguf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flover.model.DType;
import io.flover.model.gguf.GgufFile.TensorInfo;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.URISyntaxException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Reads {@code gguf/quants.gguf}, which gguf-py wrote ({@code make_quants.py} beside it): every metadata type,
 * and tensors of every supported type next to the float32 values that gguf-py's {@code quants.dequantize} gives.
 */
class GgufFileTest {
    @TempDir
    Path tmp;

    static Path fixture() throws URISyntaxException {
        return Path.of(GgufFileTest.class.getResource("/gguf/quants.gguf").toURI());
    }

    @Test
    void readsEveryMetadataType() throws Exception {
        try (GgufFile f = GgufFile.open(fixture())) {
            assertEquals(3, f.version());
            assertEquals("llama", f.string("general.architecture"));
            assertEquals(200, f.integer("test.u8"));
            assertEquals(-100, f.integer("test.i8"));
            assertEquals(60000, f.integer("test.u16"));
            assertEquals(-30000, f.integer("test.i16"));
            assertEquals(4000000000L, f.integer("test.u32"));
            assertEquals(-2000000000, f.integer("test.i32"));
            assertEquals((1L << 40) + 3, f.integer("test.u64"));
            assertEquals(-(1L << 40), f.integer("test.i64"));
            assertEquals(0.25, f.number("test.f32", 0));
            assertEquals(-1.5e300, f.number("test.f64", 0));
            assertTrue(f.bool("test.bool", false));
            assertEquals("h\u00e9llo", f.string("test.string"));
            assertEquals(List.of(1, -2, 3), f.array("test.array.i32"));
            assertEquals(List.of("a", "bc", ""), f.array("test.array.string"));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> f.string("test.u8"));
            assertTrue(e.getMessage().contains("quants.gguf") && e.getMessage().contains("test.u8"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> f.integer("no.such.key"));
            assertTrue(e.getMessage().contains("no.such.key is missing"), e.getMessage());
        }
    }

    @Test
    void shapesAreOutermostFirst() throws Exception {
        try (GgufFile f = GgufFile.open(fixture())) {
            assertArrayEquals(new long[] {2, 3, 4}, f.tensors().get("cube").shape());
            assertArrayEquals(new long[] {6, 96}, f.tensors().get("q8_0").shape());
            assertEquals(DType.Q6_K, f.tensors().get("q6_k").type());
            assertEquals(2 * 2 * 210, f.tensors().get("q6_k").data().byteSize());
        }
    }

    @Test
    void dequantisesEveryTypeAsGgufPyDoes() throws Exception {
        assertDequantisesAsGgufPy(fixture());
    }

    /** The same check on a file that the installed gguf-py writes now, where Python and gguf are at hand. */
    @Test
    void agreesWithTheInstalledGgufPy() throws Exception {
        Path script = fixture().resolveSibling("make_quants.py");
        Path out = tmp.resolve("fresh.gguf");
        Process p;
        try {
            p = new ProcessBuilder("python3", script.toString(), out.toString()).redirectErrorStream(true).start();
        } catch (IOException e) {
            Assumptions.abort("no python3: " + e.getMessage());
            return;
        }
        String log = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(120, TimeUnit.SECONDS));
        Assumptions.assumeTrue(p.exitValue() == 0 || !log.contains("No module named"), "gguf-py is not installed");
        assertEquals(0, p.exitValue(), log);
        assertDequantisesAsGgufPy(out);
    }

    private static void assertDequantisesAsGgufPy(Path file) throws IOException {
        try (GgufFile f = GgufFile.open(file)) {
            int checked = 0;
            for (String name : List.of("q8_0", "q4_0", "q4_k", "q6_k", "f16", "bf16")) {
                TensorInfo t = f.tensors().get(name);
                float[] got = dequantize(t);
                float[] expected = dequantize(f.tensors().get(name + ".expected"));
                for (int i = 0; i < expected.length; i++) {
                    assertEquals(Float.floatToIntBits(expected[i]), Float.floatToIntBits(got[i]),
                            name + " element " + i + ": " + got[i] + " vs gguf-py's " + expected[i]);
                }
                checked += expected.length;
            }
            assertEquals(6 * 96 + 5 * 64 + 3 * 512 + 2 * 512 + 24 + 24, checked);
        }
    }

    /**
     * Files quantized by llama.cpp's own llama-quantize (Q8_0; Q4_0 with a Q6_K output; Q4_K_M, which mixes Q4_K
     * and Q6_K): every tensor dequantises to the float32 bytes whose SHA-256 gguf-py's dequantisation gives
     * ({@code llama-quantize/make.sh}).
     */
    @Test
    void dequantisesLlamaQuantizeFilesAsGgufPyDoes() throws Exception {
        Path dir = fixture().resolveSibling("llama-quantize");
        JsonNode expected = new ObjectMapper().readTree(dir.resolve("dequantised.sha256.json").toFile());
        java.util.Set<DType> types = new java.util.TreeSet<>();
        for (String name : List.of("Q8_0.gguf", "Q4_0.gguf", "Q4_K_M.gguf")) {
            try (GgufFile f = GgufFile.open(dir.resolve(name))) {
                assertEquals(expected.get(name).size(), f.tensors().size(), name);
                for (TensorInfo t : f.tensors().values()) {
                    JsonNode e = expected.get(name).get(t.name());
                    assertEquals(e.get("type").asText(), t.type().name(), name + " " + t.name());
                    float[] values = dequantize(t);
                    ByteBuffer bytes = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
                    bytes.asFloatBuffer().put(values);
                    assertEquals(e.get("sha256").asText(), HexFormat.of().formatHex(
                            MessageDigest.getInstance("SHA-256").digest(bytes.array())), name + " " + t.name());
                    types.add(t.type());
                }
            }
        }
        assertEquals(java.util.EnumSet.of(DType.F32, DType.Q8_0, DType.Q4_0, DType.Q4_K, DType.Q6_K), types);
    }

    @Test
    void quantizesQ8AndQ4BitForBitAsGgufPy() throws Exception {
        try (GgufFile f = GgufFile.open(fixture()); Arena arena = Arena.ofConfined()) {
            for (String name : List.of("q8_0", "q4_0")) {
                TensorInfo t = f.tensors().get(name);
                float[] source = dequantize(f.tensors().get(name + ".source"));
                MemorySegment mine = arena.allocate(t.data().byteSize());
                t.type().quantize(source, 0, source.length / t.type().blockSize(), mine, 0);
                assertArrayEquals(t.data().toArray(ValueLayout.JAVA_BYTE), mine.toArray(ValueLayout.JAVA_BYTE), name);
            }
        }
    }

    @Test
    void errorsNameTheFileAndWhatIsWrong() throws Exception {
        byte[] good = Files.readAllBytes(fixture());

        assertError(Arrays.copyOf(new byte[] {'G', 'G', 'M', 'L'}, 64), "not a GGUF file");
        byte[] v1 = good.clone();
        ByteBuffer.wrap(v1).order(ByteOrder.LITTLE_ENDIAN).putInt(4, 1);
        assertError(v1, "GGUF version 1 is not supported");
        assertError(Arrays.copyOf(good, 300), "truncated file");
        assertError(Arrays.copyOf(good, good.length - 100), "(truncated file?)");

        byte[] unknownType = good.clone();
        int at = indexOf(unknownType, "q6_k".getBytes()) + 4 + 2 * 8; // after the name, n_dims and dims
        ByteBuffer.wrap(unknownType).order(ByteOrder.LITTLE_ENDIAN).putInt(at, 23);
        assertError(unknownType, "tensor q6_k has ggml type 23, which Flover does not read (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K)");
    }

    private void assertError(byte[] bytes, String expected) throws IOException {
        Path file = tmp.resolve("bad.gguf");
        Files.write(file, bytes);
        IOException e = assertThrows(IOException.class, () -> GgufFile.open(file).close());
        assertTrue(e.getMessage().startsWith(file.toString()) && e.getMessage().contains(expected), e.getMessage());
    }

    private static int indexOf(byte[] haystack, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= haystack.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (haystack[i + j] != needle[j]) {
                    continue outer;
                }
            }
            if (haystack[i + needle.length] == 2) { // the n_dims that follows a tensor name
                return i + needle.length;
            }
        }
        throw new AssertionError("not found");
    }

    static float[] dequantize(TensorInfo t) {
        float[] out = new float[Math.toIntExact(t.numElements())];
        t.type().dequantize(t.data(), 0, out.length / t.type().blockSize(), out, 0);
        return out;
    }
}
