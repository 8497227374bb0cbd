package io.flover.coordinator;

import java.util.List;

/**
 * The coordinator's account of the KV cache: a pool of fixed-size blocks with a reference count each, and the
 * rules about them: how many blocks a length takes, whom a newcomer may be admitted past, and whom to preempt when
 * the pool runs dry. Workers hold the bytes; this class only decides who owns which block. A block is free when
 * no sequence holds it, so a block shared by several tables (a common prefix) returns to the pool with its last
 * holder. Used by the scheduler thread alone; the rules are static so the planner applies them to its plan.
 */
public final class KvCacheManager {
    private final int blockSize;
    private final int[] refs;
    private final int[] free;
    private int freeCount;

    public KvCacheManager(int numBlocks, int blockSize) {
        if (numBlocks < 1 || blockSize < 1) {
            throw new IllegalArgumentException("a KV pool needs at least one block of at least one position");
        }
        this.blockSize = blockSize;
        this.refs = new int[numBlocks];
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
        return blocksFor(positions, blockSize);
    }

    static int blocksFor(int positions, int blockSize) {
        return (positions + blockSize - 1) / blockSize;
    }

    /**
     * The admission reserve: a newcomer taking {@code need} blocks joins only if one block per live sequence stays
     * free, so the decoders' next blocks do not have to come from preempting the newcomer straight away.
     */
    static boolean admits(int freeBlocks, int need, int live) {
        return freeBlocks - need >= live;
    }

    /**
     * Whom to preempt when the pool runs dry: the slot of the newest live sequence (the last to arrive has done the
     * least work). The last slot is never dead.
     */
    static int victim(List<Planner.Live> batch) {
        int slot = batch.size() - 1;
        for (int i = 0; i < batch.size(); i++) {
            Planner.Live s = batch.get(i);
            if (!s.dead() && s.id() > batch.get(slot).id()) {
                slot = i;
            }
        }
        return slot;
    }

    /** Takes {@code n} free blocks, each held once; or returns null (taking none) if fewer are free. */
    public int[] allocate(int n) {
        if (n > freeCount) {
            return null;
        }
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            int b = free[--freeCount];
            refs[b] = 1;
            out[i] = b;
        }
        return out;
    }

    /** Adds a hold on each of the first {@code count} of {@code blocks}, for a table that shares them. */
    public void retain(int[] blocks, int count) {
        for (int i = 0; i < count; i++) {
            if (refs[blocks[i]] <= 0) {
                throw new IllegalStateException("KV block " + blocks[i] + " is free: it cannot be shared");
            }
            refs[blocks[i]]++;
        }
    }

    /** Drops one hold on each of the first {@code count} of {@code blocks}; a block nobody holds is free again. */
    public void release(int[] blocks, int count) {
        for (int i = 0; i < count; i++) {
            int b = blocks[i];
            if (refs[b] <= 0) {
                throw new IllegalStateException("KV block " + b + " released but not held");
            }
            if (--refs[b] == 0) {
                free[freeCount++] = b;
            }
        }
    }

    /** How many tables hold block {@code b} (0: it is free). */
    public int holders(int b) {
        return refs[b];
    }
}
