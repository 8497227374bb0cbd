package io.flover.coordinator;

/**
 * The coordinator's account of the KV cache: a pool of fixed-size blocks that sequences take as they grow and
 * give back the moment they finish. Workers hold the bytes; this class only decides who owns which block.
 * Used by the scheduler thread alone.
 */
public final class BlockPool {
    private final int blockSize;
    private final int[] free;
    private int freeCount;

    public BlockPool(int numBlocks, int blockSize) {
        if (numBlocks < 1 || blockSize < 1) {
            throw new IllegalArgumentException("a KV pool needs at least one block of at least one position");
        }
        this.blockSize = blockSize;
        this.free = new int[numBlocks];
        for (int i = 0; i < numBlocks; i++) {
            free[i] = numBlocks - 1 - i; // hand out low ids first: easier to read in logs
        }
        this.freeCount = numBlocks;
    }

    public int blockSize() {
        return blockSize;
    }

    public int total() {
        return free.length;
    }

    public int free() {
        return freeCount;
    }

    /** Blocks that hold {@code positions} positions. */
    public int blocksFor(int positions) {
        return (positions + blockSize - 1) / blockSize;
    }

    /** Takes {@code n} blocks, or returns null (taking none) if fewer are free. */
    public int[] allocate(int n) {
        if (n > freeCount) {
            return null;
        }
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            out[i] = free[--freeCount];
        }
        return out;
    }

    public void release(int[] blocks, int count) {
        for (int i = 0; i < count; i++) {
            free[freeCount++] = blocks[i];
        }
    }
}
