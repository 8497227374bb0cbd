package io.flover.kernels.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The committed PTX ({@code flover.ptx} on the classpath) is built from the committed {@code flover.cu}, and
 * declares every kernel the CUDA backend launches with the parameters it passes.
 */
class PtxSourcesTest {
    static final String PTX_RESOURCE = "/io/flover/kernels/cuda/flover.ptx";
    static final String HASH_PREFIX = "// flover-source-sha256: ";

    /**
     * Kernel name to PTX parameter types, in order: pointers and {@code long} are {@code u64}, {@code int} is
     * {@code u32}, {@code float} is {@code f32}. The CUDA backend launches these by name with these arguments.
     */
    static final Map<String, List<String>> KERNELS = new LinkedHashMap<>();

    static {
        kernel("embedding_f32", "u64 u32 u32 u32 u64 u32 u64");
        kernel("embedding_bf16", "u64 u32 u32 u32 u64 u32 u64");
        kernel("embedding_f16", "u64 u32 u32 u32 u64 u32 u64");
        kernel("rms_norm", "u64 u64 u64 u32 f32");
        kernel("layer_norm", "u64 u64 u64 u64 u32 f32");
        kernel("silu_mul", "u64 u64 u32");
        kernel("gelu_new", "u64 u32");
        kernel("add", "u64 u64 u32");
        kernel("add_bias", "u64 u64 u32 u32");
        kernel("rope", "u64 u64 u64 u32 u32 u32");
        kernel("kv_write", "u64 u64 u64 u64 u64 u32 u32");
        kernel("paged_attention", "u64 u64 u64 u64 u64 u64 u64 u32 u32 u32 u32 u32 f32");
        kernel("gather_rows", "u64 u64 u32 u64 u32");
        kernel("argmax_rows", "u64 u32 u32 u64 u64");
        kernel("f32_to_bf16", "u64 u64 u64");
        kernel("f32_to_f16", "u64 u64 u64");
        kernel("bf16_to_f32", "u64 u64 u64");
        kernel("f16_to_f32", "u64 u64 u64");
    }

    private static void kernel(String name, String params) {
        KERNELS.put(name, List.of(params.split(" ")));
    }

    private static final Pattern ENTRY =
            Pattern.compile("\\.visible\\s+\\.entry\\s+(\\w+)\\s*\\(([^)]*)\\)");
    private static final Pattern PARAM = Pattern.compile("\\.param\\s+\\.(\\w+)");

    @Test
    void ptxIsBuiltFromTheCurrentSource() throws IOException, NoSuchAlgorithmException {
        Path source = moduleDir().resolve("src/main/cuda/flover.cu");
        assertTrue(Files.isRegularFile(source), "no CUDA source at " + source.toAbsolutePath());
        String expected = HexFormat.of()
                .formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(source)));
        String firstLine = ptx().lines().findFirst().orElse("");
        assertTrue(firstLine.startsWith(HASH_PREFIX),
                PTX_RESOURCE + " must start with '" + HASH_PREFIX + "<hash>'; run kernels/src/main/cuda/build-ptx.sh");
        assertEquals(expected, firstLine.substring(HASH_PREFIX.length()).strip(),
                "flover.ptx was not built from the current flover.cu: run kernels/src/main/cuda/build-ptx.sh "
                        + "(it needs nvcc from the CUDA toolkit) and commit the PTX with the source");
    }

    /**
     * The driver JIT-compiles the PTX and refuses an ISA newer than it knows: 8.0 is what drivers of CUDA 12.0 (525)
     * and later read, among them those the CUDA 12 image runs on. nvcc writes its own, newer version.
     */
    @Test
    void ptxDeclaresAnIsaThatCuda12DriversRead() throws IOException {
        List<String> header = ptx().lines().filter(l -> l.startsWith(".version") || l.startsWith(".target")).toList();
        assertEquals(List.of(".version 8.0", ".target sm_80"), header);
    }

    @Test
    void ptxDeclaresEveryKernelWithItsParameters() throws IOException {
        Map<String, List<String>> entries = new LinkedHashMap<>();
        Matcher m = ENTRY.matcher(ptx());
        while (m.find()) {
            List<String> types = new ArrayList<>();
            Matcher p = PARAM.matcher(m.group(2));
            while (p.find()) {
                types.add(p.group(1));
            }
            entries.put(m.group(1), types);
        }
        for (Map.Entry<String, List<String>> k : KERNELS.entrySet()) {
            assertTrue(entries.containsKey(k.getKey()),
                    "no .entry " + k.getKey() + " in flover.ptx; its entries: " + entries.keySet());
            assertEquals(k.getValue(), entries.get(k.getKey()), "parameter types of " + k.getKey());
        }
        assertEquals(KERNELS.keySet(), entries.keySet(),
                "flover.ptx has kernels this test does not know: list them in PtxSourcesTest.KERNELS");
    }

    private static String ptx() throws IOException {
        try (InputStream in = PtxSourcesTest.class.getResourceAsStream(PTX_RESOURCE)) {
            assertNotNull(in, "no " + PTX_RESOURCE + " on the classpath");
            return new String(in.readAllBytes(), StandardCharsets.US_ASCII);
        }
    }

    /** The kernels module: Surefire runs tests there and sets {@code basedir}. */
    private static Path moduleDir() {
        String basedir = System.getProperty("basedir");
        if (basedir != null) {
            return Path.of(basedir);
        }
        Path here = Path.of("").toAbsolutePath();
        return Files.isDirectory(here.resolve("kernels/src")) ? here.resolve("kernels") : here;
    }
}
