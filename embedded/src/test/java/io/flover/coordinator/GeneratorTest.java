package io.flover.coordinator;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flover.kernels.cpu.CpuBackend;
import io.flover.kernels.cpu.CpuKernels;
import io.flover.model.Architecture;
import io.flover.model.DType;
import io.flover.model.RandomCheckpoint;
import io.flover.model.tokenizer.Tokenizer;
import io.flover.worker.LoadedModel;
import io.flover.worker.SamplingParams;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Stop conditions and streaming of the single-request generation loop, on a random model with a tokenizer. */
class GeneratorTest {
    @TempDir
    static Path dir;
    static CpuKernels kernels;
    static LoadedModel model;
    static Tokenizer tokenizer;
    static final int[] PROMPT = {10, 20, 30, 40};

    @BeforeAll
    static void load() throws Exception {
        RandomCheckpoint.write(dir, Architecture.LLAMA, RandomCheckpoint.Preset.TINY, DType.F32, 5, s -> { });
        kernels = new CpuKernels(2);
        model = LoadedModel.open(dir, new CpuBackend(kernels));
        tokenizer = Tokenizer.load(dir);
    }

    @AfterAll
    static void close() {
        model.close();
        kernels.close();
    }

    private GenerationResult generate(GenerationRequest r, List<String> deltas) {
        return new Generator(model.lm(), tokenizer).generate(r, deltas::add);
    }

    @Test
    void lengthLimitAndStreamedTextAgree() {
        List<String> deltas = new ArrayList<>();
        GenerationResult r = generate(GenerationRequest.greedy(PROMPT, 20), deltas);
        // random weights rarely pick the one EOS id out of 2048; if they do, the reason says so
        assertEquals(r.tokenIds().length == 20 ? FinishReason.LENGTH : FinishReason.STOP, r.finishReason());
        assertEquals(String.join("", deltas), r.text());
        assertEquals(tokenizer.decode(r.tokenIds(), true), r.text());
    }

    @Test
    void stopTokenIdEndsGenerationAndIsReturned() {
        int[] free = generate(GenerationRequest.greedy(PROMPT, 12), new ArrayList<>()).tokenIds();
        int stopId = free[5];
        int firstAt = Arrays.stream(free).boxed().toList().indexOf(stopId);
        GenerationResult r = generate(new GenerationRequest(PROMPT, 12, SamplingParams.GREEDY, List.of(),
                Set.of(stopId), false), new ArrayList<>());
        assertEquals(FinishReason.STOP, r.finishReason());
        assertArrayEquals(Arrays.copyOf(free, firstAt + 1), r.tokenIds());
    }

    @Test
    void stopStringCutsTheTextBeforeIt() {
        GenerationResult free = generate(new GenerationRequest(PROMPT, 30, SamplingParams.GREEDY, List.of(), Set.of(),
                true), new ArrayList<>());
        String text = free.text();
        assertTrue(text.length() >= 6, "need some text to cut: '" + text + "'");
        String stop = text.substring(text.length() / 2, text.length() / 2 + 3);
        List<String> deltas = new ArrayList<>();
        GenerationResult r = generate(new GenerationRequest(PROMPT, 30, SamplingParams.GREEDY, List.of(stop), Set.of(),
                true), deltas);
        assertEquals(FinishReason.STOP, r.finishReason());
        assertEquals(text.substring(0, text.indexOf(stop)), r.text());
        assertEquals(r.text(), String.join("", deltas), "the stop string never reaches the stream");
        assertFalse(r.text().contains(stop));
    }

    @Test
    void seededSamplingReplays() {
        SamplingParams p = new SamplingParams(0.9f, 40, 0.95f, 0.01f, 1.1f, 1234);
        GenerationRequest req = new GenerationRequest(PROMPT, 16, p, List.of(), Set.of(), true);
        assertArrayEquals(generate(req, new ArrayList<>()).tokenIds(), generate(req, new ArrayList<>()).tokenIds());
    }
}
