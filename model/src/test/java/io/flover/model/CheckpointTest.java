package io.flover.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

class CheckpointTest {
    @TempDir
    Path dir;

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "F16", "BF16"})
    void roundTripsEveryDtype(DType dtype) throws IOException {
        float[] values = {0f, 1f, -2.5f, 3.140625f, 65280f, -0.0078125f};
        new SafetensorsWriter(dtype)
                .add("a", new long[] {2, 3}, out -> System.arraycopy(values, 0, out, 0, 6))
                .add("b", new long[] {1}, out -> out[0] = 7f)
                .write(dir.resolve(Checkpoint.SINGLE_FILE));
        try (Checkpoint ck = Checkpoint.open(dir)) {
            Tensor a = ck.tensor("a", 2, 3);
            assertEquals(dtype, a.dtype());
            assertEquals(2, a.rows());
            assertEquals(3, a.cols());
            for (int i = 0; i < values.length; i++) {
                assertEquals(values[i], a.get(i), "element " + i); // all values are exact in every dtype
            }
            assertEquals(7f, ck.tensor("b").toFloatArray()[0]);
        }
    }

    @Test
    void bf16RoundsToNearestEven() {
        assertEquals((short) 0x3F80, SafetensorsWriter.toBf16(1f));
        assertEquals((short) 0x3F80, SafetensorsWriter.toBf16(Float.intBitsToFloat(0x3F808000))); // tie, even stays
        assertEquals((short) 0x3F82, SafetensorsWriter.toBf16(Float.intBitsToFloat(0x3F818000))); // tie, odd rounds up
        assertEquals((short) 0x3F81, SafetensorsWriter.toBf16(Float.intBitsToFloat(0x3F808001)));
    }

    @Test
    void missingTensorNamesTensorAndFile() throws IOException {
        writeOne("present");
        try (Checkpoint ck = Checkpoint.open(dir)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ck.tensor("absent"));
            assertTrue(e.getMessage().contains("absent") && e.getMessage().contains(Checkpoint.SINGLE_FILE), e.getMessage());
        }
    }

    @Test
    void shapeMismatchNamesTensorAndShapes() throws IOException {
        writeOne("w");
        try (Checkpoint ck = Checkpoint.open(dir)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ck.tensor("w", 4, 4));
            assertTrue(e.getMessage().contains("w") && e.getMessage().contains("[2, 3]")
                    && e.getMessage().contains("[4, 4]") && e.getMessage().contains(Checkpoint.SINGLE_FILE), e.getMessage());
        }
    }

    @Test
    void truncatedFileNamesFileAndTensor() throws IOException {
        writeOne("w");
        Path f = dir.resolve(Checkpoint.SINGLE_FILE);
        byte[] bytes = Files.readAllBytes(f);
        Files.write(f, java.util.Arrays.copyOf(bytes, bytes.length - 4));
        IOException e = assertThrows(IOException.class, () -> Checkpoint.open(dir));
        assertTrue(e.getMessage().contains(Checkpoint.SINGLE_FILE) && e.getMessage().contains("w")
                && e.getMessage().contains("truncated"), e.getMessage());
    }

    @Test
    void unknownDtypeNamesFileTensorAndDtype() throws IOException {
        writeRaw("{\"q\":{\"dtype\":\"I8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4);
        IOException e = assertThrows(IOException.class, () -> Checkpoint.open(dir));
        assertTrue(e.getMessage().contains("q") && e.getMessage().contains("I8")
                && e.getMessage().contains(Checkpoint.SINGLE_FILE), e.getMessage());
    }

    @Test
    void sizeThatDisagreesWithShapeIsRejected() throws IOException {
        writeRaw("{\"q\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,12]}}", 16);
        IOException e = assertThrows(IOException.class, () -> Checkpoint.open(dir));
        assertTrue(e.getMessage().contains("q") && e.getMessage().contains("needs 16"), e.getMessage());
    }

    @Test
    void garbageHeaderIsRejected() throws IOException {
        Files.write(dir.resolve(Checkpoint.SINGLE_FILE), new byte[] {(byte) 0xFF, 1, 2, 3, 4, 5, 6, 7, 8, 9});
        IOException e = assertThrows(IOException.class, () -> Checkpoint.open(dir));
        assertTrue(e.getMessage().contains("header length"), e.getMessage());
    }

    @Test
    void missingWeightsNameTheDirectory() {
        IOException e = assertThrows(IOException.class, () -> Checkpoint.open(dir));
        assertTrue(e.getMessage().contains(Checkpoint.SINGLE_FILE) && e.getMessage().contains(Checkpoint.INDEX_FILE));
    }

    @Test
    void readsShardedCheckpoints() throws IOException {
        new SafetensorsWriter(DType.F32).add("x", new long[] {2}, o -> { o[0] = 1; o[1] = 2; })
                .write(dir.resolve("model-00001-of-00002.safetensors"));
        new SafetensorsWriter(DType.BF16).add("y", new long[] {1}, o -> o[0] = 3)
                .write(dir.resolve("model-00002-of-00002.safetensors"));
        Files.writeString(dir.resolve(Checkpoint.INDEX_FILE), """
                {"metadata": {"total_size": 10}, "weight_map": {
                  "x": "model-00001-of-00002.safetensors", "y": "model-00002-of-00002.safetensors"}}""");
        try (Checkpoint ck = Checkpoint.open(dir)) {
            assertEquals(2f, ck.tensor("x").get(1));
            assertEquals(DType.BF16, ck.tensor("y").dtype());
            assertEquals(3f, ck.tensor("y").get(0));
        }
    }

    @Test
    void shardListedInIndexButAbsentIsNamed() throws IOException {
        Files.writeString(dir.resolve(Checkpoint.INDEX_FILE), "{\"weight_map\": {\"x\": \"gone.safetensors\"}}");
        IOException e = assertThrows(IOException.class, () -> Checkpoint.open(dir));
        assertTrue(e.getMessage().contains("gone.safetensors"), e.getMessage());
    }

    /** A tensor placed beyond 2 GiB in a sparse file: offsets are longs all the way down. */
    @Test
    void readsTensorsBeyondTwoGigabytes() throws IOException {
        long offset = 3L << 30;
        String header = "{\"far\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[" + offset + "," + (offset + 8) + "]}}";
        Path f = writeRaw(header, 0);
        try (RandomAccessFile raf = new RandomAccessFile(f.toFile(), "rw")) {
            long dataStart = raf.length();
            raf.seek(dataStart + offset);
            raf.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putFloat(1.5f).putFloat(-4f).array());
        }
        try (Checkpoint ck = Checkpoint.open(dir)) {
            Tensor far = ck.tensor("far", 2);
            assertEquals(1.5f, far.get(0));
            assertEquals(-4f, far.get(1));
        }
    }

    private void writeOne(String name) throws IOException {
        new SafetensorsWriter(DType.F32).add(name, new long[] {2, 3}, out -> { }).write(dir.resolve(Checkpoint.SINGLE_FILE));
    }

    private Path writeRaw(String header, int dataBytes) throws IOException {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + h.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(h.length).put(h);
        Path f = dir.resolve(Checkpoint.SINGLE_FILE);
        Files.write(f, b.array());
        return f;
    }
}
