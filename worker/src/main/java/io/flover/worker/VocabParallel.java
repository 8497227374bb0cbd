package io.flover.worker;

import io.flover.collectives.Communicator;
import io.flover.kernels.cpu.CpuKernels;
import io.flover.model.Tensor;

/**
 * The embedding and the LM head split by vocabulary: each rank looks up the ids it holds (zeros for the others)
 * and a sum over ranks completes the lookup; each rank computes the logits of its vocabulary slice and an
 * all-gather gives every rank the whole rows, so every rank samples the same token.
 */
final class VocabParallel {
    private final CpuKernels k;
    private final Communicator comm;
    private final ShardLayout shard;
    private final int vocabSize;

    VocabParallel(CpuKernels kernels, Communicator comm, ShardLayout shard, int vocabSize) {
        this.k = kernels;
        this.comm = comm;
        this.shard = shard;
        this.vocabSize = vocabSize;
    }

    /** This rank's rows of a {@code [vocab, d]} table, read through the memory map. */
    Tensor slice(Tensor table) {
        return shard.size() == 1 ? table : table.rowRange(shard.firstVocab(), shard.vocab());
    }

    /** Rows {@code ids[0..tokens)} of the whole table into {@code out} ({@code localTable} is this rank's slice). */
    void embed(Tensor localTable, int[] ids, int tokens, float[] out) {
        k.embedding(localTable, shard.firstVocab(), ids, tokens, out);
        if (shard.size() > 1) {
            comm.allReduceSum(out, 0, tokens * localTable.cols());
        }
    }

    /** The logits over the whole vocabulary of {@code rows} hidden states ({@code localHead} is this rank's slice). */
    float[] logits(float[] hidden, int rows, Tensor localHead) {
        if (shard.size() == 1) {
            float[] logits = new float[rows * vocabSize];
            k.matmul(hidden, rows, localHead, logits);
            return logits;
        }
        int chunk = shard.vocabChunk();
        float[] local = new float[rows * chunk];
        if (shard.vocab() == chunk) {
            k.matmul(hidden, rows, localHead, local);
        } else if (shard.vocab() > 0) { // the last rank of an uneven split: pad its rows to the common chunk
            float[] narrow = new float[rows * shard.vocab()];
            k.matmul(hidden, rows, localHead, narrow);
            for (int r = 0; r < rows; r++) {
                System.arraycopy(narrow, r * shard.vocab(), local, r * chunk, shard.vocab());
            }
        }
        float[] gathered = new float[shard.size() * rows * chunk];
        comm.allGather(local, 0, local.length, gathered, 0);
        float[] logits = new float[rows * vocabSize];
        for (int rank = 0; rank < shard.size(); rank++) {
            int first = rank * chunk;
            int count = Math.min(chunk, vocabSize - first);
            for (int r = 0; count > 0 && r < rows; r++) {
                System.arraycopy(gathered, (rank * rows + r) * chunk, logits, r * vocabSize + first, count);
            }
        }
        return logits;
    }
}
