package io.flover.worker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.flover.kernels.Backend;
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
}
