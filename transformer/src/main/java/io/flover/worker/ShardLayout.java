package io.flover.worker;

import io.flover.kernels.Backend;
import io.flover.model.ModelConfig;

/**
 * Which part of a model one tensor-parallel rank holds (Megatron-style): a contiguous run of query heads, the KV
 * heads those queries read, a slice of the MLP's intermediate columns and a slice of the vocabulary. When the
 * group is larger than the KV head count, ranks that share a KV head each keep a copy of it.
 */
public record ShardLayout(int rank, int size, int firstHead, int heads, int firstKvHead, int kvHeads,
                          int firstFfn, int ffn, int firstVocab, int vocab, int vocabChunk) {

    /** The whole model on one rank. */
    public static ShardLayout whole(ModelConfig c) {
        return of(c, 0, 1);
    }

    /** Rank {@code rank}'s part of {@code c} in a group of {@code size}; fails naming the dimension that does not split. */
    public static ShardLayout of(ModelConfig c, int rank, int size) {
        if (size < 1 || rank < 0 || rank >= size) {
            throw new IllegalArgumentException("rank " + rank + " is not in a tensor-parallel group of " + size);
        }
        int h = c.numHeads();
        int kv = c.numKvHeads();
        requireDivides(size, h, "num_attention_heads");
        if (kv % size != 0 && size % kv != 0) {
            throw new IllegalArgumentException("tensor-parallel size " + size + " neither divides nor is a multiple of"
                    + " num_key_value_heads " + kv);
        }
        requireDivides(size, c.intermediateSize(), "intermediate_size");
        int heads = h / size;
        int kvHeads = Math.max(1, kv / size);
        // A rank's query heads [rank * heads, ...) read KV heads from (rank * heads) / (h / kv) on.
        int firstKvHead = rank * heads / (h / kv);
        int ffn = c.intermediateSize() / size;
        int vocabChunk = Math.ceilDiv(c.vocabSize(), size);
        int firstVocab = Math.min(rank * vocabChunk, c.vocabSize());
        int vocab = Math.min(vocabChunk, c.vocabSize() - firstVocab);
        return new ShardLayout(rank, size, rank * heads, heads, firstKvHead, kvHeads, rank * ffn, ffn, firstVocab, vocab,
                vocabChunk);
    }

    /** Bytes one KV block of {@code blockSize} positions takes on this rank. */
    public long kvBytesPerBlock(ModelConfig c, int blockSize) {
        return Backend.KvCache.bytesPerBlock(c.numLayers(), blockSize, kvHeads, c.headDim());
    }

    private static void requireDivides(int size, int n, String what) {
        if (n % size != 0) {
            throw new IllegalArgumentException("tensor-parallel size " + size + " does not divide " + what + " " + n);
        }
    }
}
