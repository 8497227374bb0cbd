package io.flover.kernels.cpu;

import static io.flover.kernels.cpu.PanelFormat.GROUP;

import io.flover.model.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * A weight matrix {@code [rows, cols]} (Hugging Face {@code Linear} layout) repacked once, when a model loads,
 * into the group layout of its {@link PanelFormat}, in memory of its own (freed with the object). The last group
 * is padded with zero rows.
 */
public final class PackedMatrix {
    private final PanelFormat format;
    private final int rows;
    private final int cols;
    private final long groupBytes;
    private final MemorySegment data;

    private PackedMatrix(PanelFormat format, int rows, int cols, MemorySegment data) {
        this.format = format;
        this.rows = rows;
        this.cols = cols;
        this.groupBytes = format.groupBytes(cols);
        this.data = data;
    }

    /** Packs {@code w}, a 2-D tensor of any dtype: F16 is widened to F32 (exactly), the others keep their width or blocks. */
    public static PackedMatrix of(Tensor w) {
        int n = w.rows();
        int k = w.cols();
        PanelFormat format = PanelFormat.of(w.dtype());
        int groups = Math.ceilDiv(n, GROUP);
        long groupBytes = format.groupBytes(k);
        MemorySegment data = Arena.ofAuto().allocate(Math.max(1, groups * groupBytes), 64);
        float[] scratch = new float[GROUP * k];
        for (int g = 0; g < groups; g++) {
            int from = g * GROUP;
            format.pack(w, from, Math.min(GROUP, n - from), scratch, data, g * groupBytes);
        }
        return new PackedMatrix(format, n, k, data);
    }

    public int rows() {
        return rows;
    }

    public int cols() {
        return cols;
    }

    PanelFormat format() {
        return format;
    }

    int groups() {
        return Math.ceilDiv(rows, GROUP);
    }

    long groupBytes() {
        return groupBytes;
    }

    MemorySegment data() {
        return data;
    }
}
