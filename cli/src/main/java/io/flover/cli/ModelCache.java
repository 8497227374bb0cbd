package io.flover.cli;

import io.flover.model.Architecture;
import io.flover.model.DType;
import io.flover.model.RandomCheckpoint;
import io.flover.model.tokenizer.ByteLevelTokenizerWriter;
import java.io.IOException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Locale;

/**
 * Random-weight models that commands use when given none, written once under {@code $FLOVER_HOME/models}
 * (default {@code ~/.cache/flover/models}), so a fresh machine runs Flover without downloading anything.
 */
final class ModelCache {
    private ModelCache() {
    }

    /** The model of commands run without {@code --model}: a tiny float32 Llama. */
    static Path defaultModel() throws IOException {
        return get(Architecture.LLAMA, RandomCheckpoint.Preset.TINY, DType.F32);
    }

    static Path get(Architecture arch, RandomCheckpoint.Preset preset, DType dtype) throws IOException {
        String name = (arch.name() + "-" + preset.name() + "-" + dtype.name()).toLowerCase(Locale.ROOT);
        Path dir = root().resolve(name);
        if (Files.isRegularFile(dir.resolve("tokenizer.json"))) {
            if (!Files.readString(dir.resolve("tokenizer_config.json")).contains("chat_template")) {
                ByteLevelTokenizerWriter.writeConfig(dir); // written before models had a chat template
            }
            return dir;
        }
        // Written aside and renamed into place, so an interrupted run never leaves half a model behind.
        Path tmp = Files.createTempDirectory(Files.createDirectories(dir.getParent()), "partial-");
        Progress progress = new Progress("writing random-weight model " + name + ":");
        RandomCheckpoint.write(tmp, arch, preset, dtype, 1, progress::update);
        try {
            Files.move(tmp, dir, StandardCopyOption.ATOMIC_MOVE);
        } catch (FileAlreadyExistsException | DirectoryNotEmptyException raced) {
            // another flover process wrote it first; the weights are the same
        }
        progress.done("wrote random-weight model " + dir);
        return dir;
    }

    private static Path root() {
        String home = System.getenv("FLOVER_HOME");
        Path root = home != null ? Path.of(home) : Path.of(System.getProperty("user.home"), ".cache", "flover");
        return root.resolve("models");
    }
}
