package io.flover.kernels.cpu;

import io.flover.kernels.Backend;

/** A paged key/value cache (see {@link Backend.KvCache}) in float arrays on the heap, one pair per layer. */
public final class CpuKvCache implements Backend.KvCache {
    private final int layers;
    private final int numBlocks;
    private final int blockSize;
    private final int kvHeads;
    private final int headDim;
    private final float[][] keys;
    private final float[][] values;

    public CpuKvCache(int layers, int numBlocks, int blockSize, int kvHeads, int headDim) {
        long floatsPerLayer = (long) numBlocks * blockSize * kvHeads * headDim;
        if (floatsPerLayer > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("KV pool of " + numBlocks + " blocks is too large for one layer array");
        }
        this.layers = layers;
        this.numBlocks = numBlocks;
        this.blockSize = blockSize;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        this.keys = new float[layers][(int) floatsPerLayer];
        this.values = new float[layers][(int) floatsPerLayer];
    }

    public int layers() {
        return layers;
    }

    @Override
    public int numBlocks() {
        return numBlocks;
    }

    @Override
    public int blockSize() {
        return blockSize;
    }

    public int kvHeads() {
        return kvHeads;
    }

    public int headDim() {
        return headDim;
    }

    /** Floats in one token row of K (or V): {@code kvHeads * headDim}. */
    public int rowWidth() {
        return kvHeads * headDim;
    }

    public float[] keys(int layer) {
        return keys[layer];
    }

    public float[] values(int layer) {
        return values[layer];
    }

    /** Offset into {@link #keys(int)} / {@link #values(int)} of the row holding {@code position} of a sequence. */
    public int rowOffset(int[] blockTable, int position) {
        return (blockTable[position / blockSize] * blockSize + position % blockSize) * rowWidth();
    }

    /** Stores the K and V rows of one token of a sequence at {@code position}. */
    public void write(int layer, int[] blockTable, int position, float[] k, int kOffset, float[] v, int vOffset) {
        int at = rowOffset(blockTable, position);
        System.arraycopy(k, kOffset, keys[layer], at, rowWidth());
        System.arraycopy(v, vOffset, values[layer], at, rowWidth());
    }
}
