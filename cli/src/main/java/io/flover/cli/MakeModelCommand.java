package io.flover.cli;

import io.flover.model.Architecture;
import io.flover.model.DType;
import io.flover.model.RandomCheckpoint;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "make-model", mixinStandardHelpOptions = true,
        description = "Write a random-weight checkpoint of a real model shape, with a byte-level BPE tokenizer;"
                + " q8_0 and q4_0 write model.gguf (llama.cpp's layout) beside tokenizer.json.")
final class MakeModelCommand implements Callable<Integer> {
    @Option(names = "--arch", required = true, description = "llama or gpt2")
    String arch;

    @Option(names = "--preset", defaultValue = "tiny", description = "tiny, 110m, 1b or 7b (llama only) (default: ${DEFAULT-VALUE})")
    String preset;

    @Option(names = "--dtype", defaultValue = "f32", description = "f32, bf16, f16, q8_0 or q4_0 (default: ${DEFAULT-VALUE})")
    String dtype;

    @Option(names = "--out", required = true, description = "directory to write")
    Path out;

    @Option(names = "--seed", defaultValue = "1", description = "weight seed (default: ${DEFAULT-VALUE})")
    long seed;

    @Override
    public Integer call() throws Exception {
        Architecture a = Architecture.parse(arch);
        RandomCheckpoint.Preset p = RandomCheckpoint.Preset.parse(preset);
        DType d = DType.parse(dtype);
        Progress progress = new Progress("writing");
        RandomCheckpoint.write(out, a, p, d, seed, progress::update);
        progress.done("wrote " + a.hfName() + " " + preset + " " + d + " to " + out);
        return 0;
    }
}
