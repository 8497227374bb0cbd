package io.flover.worker;

import io.flover.kernels.Backend;
import io.flover.model.Tensor;
import java.util.Arrays;

/**
 * The embedding and the LM head split by vocabulary: each rank looks up the ids it holds (zeros for the others)
 * and a sum over ranks completes the lookup; each rank computes the logits of its vocabulary slice, and the ranks
 * gather the argmax of each row (and the whole rows where a sampler needs them), so every rank picks the same token.
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
        if (vocabSize >= 1 << 24) {
            throw new IllegalArgumentException("vocab_size " + vocabSize + ": the log-probability summaries carry "
                    + "token ids as floats, exact below 2^24");
        }
    }

    /** This rank's rows of a {@code [vocab, d]} table, read through the memory map. */
    Tensor slice(Tensor table) {
        return shard.size() == 1 ? table : table.rowRange(shard.firstVocab(), shard.vocab());
    }

    /** The rows of the step's token ids in the whole table into {@code out} ({@code localTable}: this rank's slice). */
    void embed(Backend.Forward step, Backend.Matrix localTable, Backend.Buffer out) {
        k.embedding(step, localTable, shard.firstVocab(), out);
        group.allReduceSum(out, step.index().tokens() * localTable.cols());
    }

    /**
     * The greedy token of each of {@code sampleRows} hidden states ({@code localHead}: this rank's slice of the LM
     * head), and with {@code withRows} their logits over the whole vocabulary. Each rank takes the argmax of its own
     * slice; the ranks then trade one (maximum, index) pair per row rather than their slices of the logits. With
     * {@code topLogprobs >= 0}, or hidden states that score a token, every row's log-sum-exp and best
     * {@code max(1, topLogprobs)} tokens come too, merged from every rank's slice ({@link TopLogits}): the
     * {@code scoreTargets.length} hidden states after the sample rows score the ids {@code scoreTargets}, whose
     * logits come with them.
     */
    LogitRows logits(Backend.Forward step, Backend.Buffer hidden, int sampleRows, int[] scoreTargets,
                     Backend.Matrix localHead, boolean withRows, int topLogprobs) {
        int rows = sampleRows + scoreTargets.length;
        int held = shard.vocab();
        boolean summarise = topLogprobs >= 0 || scoreTargets.length > 0;
        int[] targets = new int[rows];
        Arrays.fill(targets, 0, sampleRows, -1);
        System.arraycopy(scoreTargets, 0, targets, sampleRows, scoreTargets.length);
        int[] argmax = new int[sampleRows];
        float[] maxima = new float[sampleRows];
        Arrays.fill(maxima, Float.NEGATIVE_INFINITY);
        Backend.Buffer local = null;
        if (held > 0) { // the last rank of an uneven split may hold no rows
            local = step.buffer(rows * held);
            k.matmul(hidden, rows, localHead, local);
            k.argmaxRows(local, sampleRows, held, argmax, maxima);
        }
        if (shard.size() == 1) {
            float[] all = withRows || summarise ? k.toHost(local, rows * held) : null;
            return new LogitRows(argmax, withRows ? all : null, summarise ? logprobs(all, rows, held, topLogprobs,
                    targets) : null);
        }
        int[] pairs = new int[2 * sampleRows]; // the maxima's bits, then the indices: one int all-gather
        for (int r = 0; r < sampleRows; r++) {
            pairs[r] = Float.floatToRawIntBits(maxima[r]);
            pairs[sampleRows + r] = shard.firstVocab() + argmax[r];
        }
        int[] gathered = group.allGather(pairs);
        for (int r = 0; r < sampleRows; r++) {
            // Ranks hold ascending slices: the first rank with the largest maximum holds the lowest index of it.
            float best = Float.NEGATIVE_INFINITY;
            argmax[r] = 0;
            for (int rank = 0; rank < shard.size(); rank++) {
                float v = Float.intBitsToFloat(gathered[rank * 2 * sampleRows + r]);
                if (v > best) {
                    best = v;
                    argmax[r] = gathered[rank * 2 * sampleRows + sampleRows + r];
                }
            }
        }
        LogitRows.Logprobs logprobs = null;
        if (summarise) {
            logprobs = logprobs(held > 0 ? k.toHost(local, rows * held) : new float[0], rows, held, topLogprobs,
                    targets);
        }
        return new LogitRows(argmax, withRows ? gatherRows(local, sampleRows, held) : null, logprobs);
    }

    /** Every rank summarises its slice of each row; the summaries, gathered, merge to the whole row's. */
    private LogitRows.Logprobs logprobs(float[] slice, int rows, int held, int topLogprobs, int[] targets) {
        int n = Math.max(1, topLogprobs);
        float[] summary = new float[rows * TopLogits.width(n)];
        TopLogits.summarise(slice, rows, held, shard.firstVocab(), n, targets, summary);
        float[] all = shard.size() == 1 ? summary : group.allGather(summary);
        return TopLogits.merge(all, shard.size(), rows, n);
    }

    /** Every rank's slice of the logits of {@code rows} rows, assembled into whole rows. */
    private float[] gatherRows(Backend.Buffer local, int rows, int held) {
        int chunk = shard.vocabChunk();
        float[] padded = new float[rows * chunk];
        if (held > 0) { // pad the rows of a short last slice to the common chunk
            float[] host = k.toHost(local, rows * held);
            for (int r = 0; r < rows; r++) {
                System.arraycopy(host, r * held, padded, r * chunk, held);
            }
        }
        float[] gathered = group.allGather(padded);
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
