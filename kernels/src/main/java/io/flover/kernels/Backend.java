package io.flover.kernels;

import io.flover.model.Tensor;
import java.lang.foreign.MemorySegment;
import java.util.function.Supplier;

/**
 * A kernel set: the operations of a transformer forward on one device (the CPU, or one GPU), over weights,
 * activations and a paged KV cache that live on that device. A model's forward is written once against this
 * interface, so the choice of backend changes where the arithmetic runs, never what it computes.
 *
 * <p>Activations are float32 and row-major, one row per token of the step. The handles a backend returns are its
 * own: passing one backend's handle to another is an error. A backend is used by one thread at a time, inside
 * {@link #onDevice}.
 */
public interface Backend extends AutoCloseable {
    /** A float32 activation buffer on the device. */
    interface Buffer {
    }

    /** A weight matrix {@code [rows = out features, cols = in features]} (Hugging Face {@code Linear} layout). */
    interface Matrix {
        int rows();

        int cols();
    }

    /** A float32 vector on the device: a norm's weight, a bias, RoPE's frequencies. */
    interface Vector {
        int length();
    }

    /**
     * A paged key/value cache: per layer, a pool of {@code numBlocks} blocks of {@code blockSize} token rows of
     * {@code kvHeads * headDim} floats for K and as many for V. Position {@code p} of a sequence lives in block
     * {@code table[p / blockSize]}, row {@code p % blockSize}. Which blocks belong to whom is decided elsewhere.
     */
    interface KvCache extends AutoCloseable {
        int numBlocks();

        int blockSize();

        /**
         * Frees its memory now rather than when the backend closes: a GPU's device memory has no garbage collector.
         * Idempotent.
         */
        @Override
        default void close() {
        }

        /** Bytes one block takes across all layers, K and V: what a memory budget is divided by. */
        static long bytesPerBlock(int layers, int blockSize, int kvHeads, int headDim) {
            return 2L * layers * blockSize * kvHeads * headDim * Float.BYTES;
        }
    }

    /**
     * One forward pass over a step: its {@link StepIndex} on the device, and the scratch buffers the pass allocates,
     * which live until it is closed.
     */
    interface Forward extends AutoCloseable {
        StepIndex index();

        /** A scratch buffer of {@code floats} floats, contents undefined. */
        Buffer buffer(int floats);

        @Override
        void close();
    }

    /**
     * Runs {@code work} where the device is driven from: on the CPU, right here; on a GPU, on the one thread that
     * owns its context. A model wraps each whole forward in one call, so its operations need no hand-off.
     */
    default <T> T onDevice(Supplier<T> work) {
        return work.get();
    }

    /** What the backend is, for logs and errors: {@code cpu}, {@code cuda:0}. */
    String device();

    /** The longest attention head, in elements, that {@link #attention} takes. */
    default int maxHeadDim() {
        return Integer.MAX_VALUE;
    }

    /**
     * The weights {@code w} of a matmul on the device, made ready now (uploaded, or repacked for the CPU's tiles) so
     * that no request pays for it; also usable as an embedding table (a head tied to the embeddings).
     */
    Matrix matrix(Tensor w);

    /** A table whose rows {@link #embedding} or {@link #positionEmbedding} look up, and no matmul uses. */
    default Matrix table(Tensor w) {
        return matrix(w);
    }

    Vector vector(float[] values);

    KvCache kvCache(int layers, int numBlocks, int blockSize, int kvHeads, int headDim);

    /** Opens a forward pass over {@code index}, whose KV rows live in {@code kv}. */
    Forward forward(StepIndex index, KvCache kv);

    /**
     * Row {@code ids[t] - firstId} of {@code table} into row {@code t} of {@code out} for each of the step's tokens,
     * zeros for ids the table does not hold: with a vocabulary split across ranks a sum over ranks completes it.
     */
    void embedding(Forward step, Matrix table, int firstId, Buffer out);

    /** Row {@code positions[t]} of {@code table} into row {@code t} of {@code out}: learned position embeddings. */
    void positionEmbedding(Forward step, Matrix table, Buffer out);

    /** {@code out[t][n] = sum_k x[t][k] * w[n][k]} for {@code t < rows}, accumulated in float32. */
    void matmul(Buffer x, int rows, Matrix w, Buffer out);

    /**
     * {@link #matmul(Buffer, int, Matrix, Buffer)} of one {@code x} by each {@code w[i]} (same columns) into
     * {@code out[i]}: the same results, which a backend may compute together (Q, K and V; gate and up).
     */
    default void matmul(Buffer x, int rows, Matrix[] w, Buffer[] out) {
        for (int i = 0; i < w.length; i++) {
            matmul(x, rows, w[i], out[i]);
        }
    }

    /** RMSNorm of each row of {@code x} (width {@code weight.length()}) into {@code out}, which may be {@code x}. */
    void rmsNorm(Buffer x, Buffer out, int rows, Vector weight, float eps);

    /** LayerNorm of each row of {@code x} (width {@code weight.length()}) into {@code out}, which may be {@code x}. */
    void layerNorm(Buffer x, Buffer out, int rows, Vector weight, Vector bias, float eps);

    /** Adds {@code bias} to every row of {@code x}. */
    void addBias(Buffer x, int rows, Vector bias);

    /** {@code acc[i] += x[i]} for {@code i < n}: the residual connection. */
    void add(Buffer acc, Buffer x, int n);

    /** {@code gate[i] = silu(gate[i]) * up[i]} for {@code i < n}. */
    void swiglu(Buffer gate, Buffer up, int n);

    /** GPT-2's tanh approximation of GELU, in place on {@code x[0..n)}. */
    void geluNew(Buffer x, int n);

    /**
     * Rotary embedding in Hugging Face's "rotate half" layout, in place on {@code heads} heads of every token row
     * of {@code x}: element {@code i} of a head pairs with {@code i + headDim / 2} and turns by
     * {@code position * invFreq[i]}.
     */
    void rope(Forward step, Buffer x, int heads, Vector invFreq);

    /** Stores the K and V rows of the step's tokens ({@code kvHeads * headDim} wide) in layer {@code layer}. */
    void writeKv(Forward step, int layer, Buffer k, Buffer v);

    /**
     * Causal attention of the step's tokens over their sequences' cached K/V in {@code layer}: token {@code t}
     * attends to positions {@code 0..positions[t]}; query head {@code h} reads KV head
     * {@code h / (heads / kvHeads)}. {@code q} and {@code out} rows are {@code heads * headDim} wide.
     */
    void attention(Forward step, Buffer q, Buffer out, int layer, int heads);

    /** Copies the rows of {@code x} (width {@code d}) at the step's logit tokens into {@code out}, in order. */
    void gatherLogitRows(Forward step, Buffer x, int d, Buffer out);

    /**
     * Per row of {@code x} ({@code rows} rows of {@code width} floats), the index of its largest value into
     * {@code ids} and that value into {@code maxima}, with {@link io.flover.kernels.cpu.CpuKernels#argmax}'s rules:
     * the lowest index wins a tie, a NaN is never chosen, and a row with nothing above -infinity gives 0 and
     * -infinity. Greedy decoding reads these two numbers per row where the logits are, not the logits. Called
     * inside a step.
     */
    void argmaxRows(Buffer x, int rows, int width, int[] ids, float[] maxima);

    /**
     * The first {@code n} floats of {@code b} on the host, to read: the buffer's own storage where it already lives
     * there, a new array where not.
     */
    float[] toHost(Buffer b, int n);

    /**
     * The first {@code n} floats of {@code b} as host memory that a collective reads and writes in place: the
     * buffer's own storage where it lives on the host; on a GPU, pinned memory the backend keeps for this and
     * reuses at the next call, so no call makes a new array. Hand the changes back with {@link #fromHost}.
     */
    MemorySegment hostSegment(Buffer b, int n);

    /**
     * Makes {@code b}'s first {@code n} floats those of {@code host}: what {@link #hostSegment} returned (nothing to
     * copy where that is the buffer's own storage) or any other floats.
     */
    void fromHost(MemorySegment host, Buffer b, int n);

    /** Frees what the backend holds on the device; handles are unusable afterwards. */
    @Override
    void close();
}
