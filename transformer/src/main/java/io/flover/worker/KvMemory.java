package io.flover.worker;

import io.flover.kernels.Backend;
import io.flover.kernels.cuda.CudaBackend;

/**
 * The memory a shard's KV cache gets: {@code bytes}, or on a GPU with {@code gpuFraction > 0}, what is left of that
 * fraction of the GPU's memory once the weights are on it, less a reserve for a step's scratch.
 */
public record KvMemory(long bytes, double gpuFraction) {
    /** GPU memory kept out of the KV cache for a step's activations, logits and cuBLAS's workspaces. */
    private static final long GPU_STEP_RESERVE = 1L << 30;

    /** {@code bytes} wherever the shard runs. */
    public static KvMemory of(long bytes) {
        return new KvMemory(bytes, 0);
    }

    /**
     * Blocks of {@code perBlock} bytes for a shard whose weights {@code backend} holds already.
     *
     * @throws IllegalArgumentException if not even one fits
     */
    public int blocks(Backend backend, long perBlock) {
        if (gpuFraction > 0 && backend instanceof CudaBackend gpu) {
            long budget = gpu.kvBudget(gpuFraction, GPU_STEP_RESERVE);
            if (budget < perBlock) {
                throw new IllegalArgumentException("a GPU memory fraction of " + gpuFraction + " leaves " + budget
                        + " bytes for the KV cache once the weights are loaded: no block of " + perBlock + " bytes fits");
            }
            return blocks(budget, perBlock);
        }
        return blocks(bytes, perBlock);
    }

    /**
     * Blocks of {@code perBlock} bytes that fit {@code budget} bytes.
     *
     * @throws IllegalArgumentException if not even one fits
     */
    public static int blocks(long budget, long perBlock) {
        long blocks = budget / perBlock;
        if (blocks < 1) {
            throw new IllegalArgumentException("a KV memory of " + budget + " bytes holds no block of " + perBlock
                    + " bytes for this model");
        }
        return (int) Math.min(blocks, Integer.MAX_VALUE);
    }
}
