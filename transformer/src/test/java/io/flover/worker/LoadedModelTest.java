package io.flover.worker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.flover.kernels.Backend;
import io.flover.kernels.cpu.CpuBackend;
import io.flover.kernels.cpu.CpuKernels;
import java.lang.reflect.Proxy;
import org.junit.jupiter.api.Test;

class LoadedModelTest {
    /**
     * A backend whose attention takes shorter heads than the model's refuses it before a single weight goes up: on
     * a GPU, uploading a large model only to fail at its KV cache would take minutes.
     */
    @Test
    void headsLongerThanTheBackendTakesAreRefusedBeforeAnyWeightLoads() throws Exception {
        Backend eightWide = (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(),
                new Class<?>[] {Backend.class}, (proxy, method, args) -> switch (method.getName()) {
                    case "maxHeadDim" -> 8;
                    case "device" -> "narrow";
                    default -> throw new AssertionError(method.getName() + " called before the head size was checked");
                });
        // llama-tiny's heads have 16 elements.
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> LoadedModel.open(GoldenModelTest.dir("llama-tiny-f32"), eightWide));
        assertEquals("narrow runs attention heads of up to 8 elements; this model's have 16", e.getMessage());
    }

    /** A token reads one row of an untied embedding table, and all of a tied one, which is also the head. */
    @Test
    void aTokenReadsOneRowOfAnUntiedEmbeddingTable() throws Exception {
        try (CpuKernels kernels = new CpuKernels(1); CpuBackend backend = new CpuBackend(kernels);
             LoadedModel llama = LoadedModel.open(GoldenModelTest.dir("llama-tiny-f32"), backend);
             LoadedModel gpt2 = LoadedModel.open(GoldenModelTest.dir("gpt2-tiny-f32"), backend)) {
            // llama-tiny: untied, 512 x 64 float32 embeddings.
            assertEquals(llama.weightBytes() - 511 * 64 * Float.BYTES, llama.weightBytesPerToken());
            assertEquals(gpt2.weightBytes(), gpt2.weightBytesPerToken());
        }
    }
}
