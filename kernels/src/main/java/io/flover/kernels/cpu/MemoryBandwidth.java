package io.flover.kernels.cpu;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Measures how fast the machine streams memory into the cores: the bound on decoding one sequence, which must
 * read every weight once per token.
 */
public final class MemoryBandwidth {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;

    private MemoryBandwidth() {
    }

    /** Bytes per second read by {@code threads} threads summing disjoint parts of an off-heap buffer of {@code bytes}. */
    public static double measure(int threads, long bytes, double seconds) throws InterruptedException {
        try (Arena arena = Arena.ofShared()) {
            long per = bytes / threads / S.vectorByteSize() * S.vectorByteSize();
            MemorySegment buf = arena.allocate(per * threads, 64);
            buf.fill((byte) 1);
            float[] sink = new float[threads];
            // Compile the loop first: run interpreted, one pass over the buffer takes seconds.
            MemorySegment warm = buf.asSlice(0, Math.min(per, 1 << 20));
            for (int i = 0; i < 5_000; i++) {
                sink[0] += sum(warm);
            }
            long deadline = System.nanoTime() + (long) (seconds * 1e9);
            long[] passes = new long[threads];
            Thread[] ts = new Thread[threads];
            long start = System.nanoTime();
            for (int t = 0; t < threads; t++) {
                int id = t;
                MemorySegment part = buf.asSlice(id * per, per);
                ts[t] = Thread.ofPlatform().start(() -> {
                    do {
                        sink[id] += sum(part);
                        passes[id]++;
                    } while (System.nanoTime() < deadline);
                });
            }
            long read = 0;
            for (int t = 0; t < threads; t++) {
                ts[t].join();
                read += passes[t] * per;
            }
            return read / ((System.nanoTime() - start) / 1e9);
        }
    }

    private static float sum(MemorySegment s) {
        FloatVector a = FloatVector.zero(S);
        FloatVector b = FloatVector.zero(S);
        long step = S.vectorByteSize();
        long n = s.byteSize();
        long i = 0;
        for (; i + 2 * step <= n; i += 2 * step) {
            a = a.add(FloatVector.fromMemorySegment(S, s, i, ByteOrder.LITTLE_ENDIAN));
            b = b.add(FloatVector.fromMemorySegment(S, s, i + step, ByteOrder.LITTLE_ENDIAN));
        }
        for (; i < n; i += step) {
            a = a.add(FloatVector.fromMemorySegment(S, s, i, ByteOrder.LITTLE_ENDIAN));
        }
        return a.add(b).reduceLanes(jdk.incubator.vector.VectorOperators.ADD) + s.get(ValueLayout.JAVA_BYTE, 0);
    }
}
