package io.flover.worker;

import io.flover.kernels.Backend;
import io.flover.model.Tensor;

/**
 * The embedding and the LM head split by vocabulary: each rank looks up the ids it holds (zeros for the others)
 * and a sum over ranks completes the lookup; each rank computes the logits of its vocabulary slice and an
 * all-gather gives every rank the whole rows, so every rank samples the same token.
 */
final class VocabParallel {
    private final Backend k;
    private final ShardCollectives group;
    private final ShardLayout shard;
    private final int vocabSize;

    VocabParallel(Backend backend, ShardCollectives group, ShardLayout shard, int vocabSize) {
        this.k = backend;
        this.group = group;
        this.shard = shard;
        this.vocabSize = vocabSize;
    }

    /** This rank's rows of a {@code [vocab, d]} table, read through the memory map. */
    Tensor slice(Tensor table) {
        return shard.size() == 1 ? table : table.rowRange(shard.firstVocab(), shard.vocab());
    }

    /** The rows of the step's token ids in the whole table into {@code out} ({@code localTable}: this rank's slice). */
    void embed(Backend.Step step, Backend.Matrix localTable, Backend.Buffer out) {
        k.embedding(step, localTable, shard.firstVocab(), out);
        group.allReduceSum(out, step.index().tokens() * localTable.cols());
    }

    /** The logits over the whole vocabulary of {@code rows} hidden states ({@code localHead}: this rank's slice). */
    float[] logits(Backend.Step step, Backend.Buffer hidden, int rows, Backend.Matrix localHead) {
        if (shard.size() == 1) {
            Backend.Buffer logits = step.buffer(rows * vocabSize);
            k.matmul(hidden, rows, localHead, logits);
            return k.toHost(logits, rows * vocabSize);
        }
        int chunk = shard.vocabChunk();
        int held = shard.vocab();
        float[] local = new float[rows * chunk];
        if (held > 0) { // the last rank of an uneven split holds fewer rows: pad its rows to the common chunk
            Backend.Buffer narrow = step.buffer(rows * held);
            k.matmul(hidden, rows, localHead, narrow);
            float[] host = k.toHost(narrow, rows * held);
            for (int r = 0; r < rows; r++) {
                System.arraycopy(host, r * held, local, r * chunk, held);
            }
        }
        float[] gathered = group.allGather(local, local.length);
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
