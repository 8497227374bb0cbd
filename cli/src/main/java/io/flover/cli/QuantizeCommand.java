package io.flover.cli;

import io.flover.model.DType;
import io.flover.model.GgufConverter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "quantize", mixinStandardHelpOptions = true,
        description = "Write a Hugging Face checkpoint as a GGUF file that llama.cpp also runs: matrices in the"
                + " chosen type, vectors in F32.")
final class QuantizeCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, description = "Hugging Face model directory")
    Path model;

    @Option(names = "--type", required = true, description = "q8_0, q4_0, f32, f16 or bf16")
    String type;

    @Option(names = "--out", required = true, description = "GGUF file to write")
    Path out;

    @Override
    public Integer call() throws Exception {
        DType t = DType.parse(type);
        boolean withTokenizer = GgufConverter.convert(model, t, out);
        System.err.println("wrote " + out + " (" + t + ")" + (withTokenizer ? ""
                : "; its tokenizer is not byte-level BPE and was not embedded: keep tokenizer.json beside the file"));
        return 0;
    }
}
