package io.flover.worker;

import io.flover.collectives.Communicator;
import io.flover.kernels.Backend;
import io.flover.model.Checkpoint;
import io.flover.model.DType;
import io.flover.model.ModelConfig;
import io.flover.model.Tensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Path;

/**
 * A model opened from a Hugging Face directory: its config, its memory-mapped checkpoint and the forward of
 * its architecture. Closing it unmaps the weights.
 */
public final class LoadedModel implements AutoCloseable {
    private final Path dir;
    private final Checkpoint checkpoint;
    private final Arena derivedWeights;
    private final CausalLm lm;

    private LoadedModel(Path dir, Checkpoint checkpoint, Arena derivedWeights, CausalLm lm) {
        this.dir = dir;
        this.checkpoint = checkpoint;
        this.derivedWeights = derivedWeights;
        this.lm = lm;
    }

    /** Opens the whole model in {@code dir} on {@code backend}; errors name the file and what is wrong with it. */
    public static LoadedModel open(Path dir, Backend backend) throws IOException {
        return open(dir, backend, Communicator.solo());
    }

    /**
     * Opens rank {@code comm.rank()}'s tensor-parallel shard of the model in {@code dir}, reading only that
     * shard's part of the weights, on {@code backend}; its forward runs the group's collectives through {@code comm}.
     * The backend stays the caller's: close it after the model.
     */
    public static LoadedModel open(Path dir, Backend backend, Communicator comm) throws IOException {
        ModelConfig config = ModelConfig.load(dir);
        if (config.headDim() > backend.maxHeadDim()) {
            // Before any weight is read or uploaded.
            throw new IllegalArgumentException(backend.device() + " runs attention heads of up to "
                    + backend.maxHeadDim() + " elements; this model's have " + config.headDim());
        }
        Checkpoint ck = Checkpoint.open(dir);
        Arena derived = Arena.ofShared();
        try {
            CausalLm lm = switch (config.architecture()) {
                case LLAMA -> new LlamaModel(config, ck, backend, comm, derived);
                case GPT2 -> new Gpt2Model(config, ck, backend, comm, derived);
            };
            return new LoadedModel(dir, ck, derived, lm);
        } catch (RuntimeException e) {
            derived.close();
            ck.close();
            throw e;
        }
    }

    public Path dir() {
        return dir;
    }

    public ModelConfig config() {
        return lm.config();
    }

    public CausalLm lm() {
        return lm;
    }

    /** The dtype of most of the checkpoint's weights. */
    public DType weightsDtype() {
        return checkpoint.mainDtype();
    }

    /** Elements of all the weights. */
    public long parameterCount() {
        return checkpoint.parameterCount();
    }

    /** Bytes of all the weights. */
    public long weightBytes() {
        return checkpoint.dataBytes();
    }

    /**
     * Bytes of weights that decoding one token reads: all of them, but for an embedding table that is not also the
     * head, of which a token reads one row.
     */
    public long weightBytesPerToken() {
        String table = "model.embed_tokens.weight";
        if (!checkpoint.contains(table) || !checkpoint.contains("lm_head.weight")) {
            return checkpoint.dataBytes();
        }
        Tensor embed = checkpoint.tensor(table);
        long bytes = embed.data().byteSize();
        return checkpoint.dataBytes() - bytes + bytes / embed.rows();
    }

    @Override
    public void close() {
        derivedWeights.close();
        checkpoint.close();
    }
}
