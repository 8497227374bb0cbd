package io.flover.kernels.cuda;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.Arrays;

/** The kernels of {@code src/main/cuda/flover.cu} as PTX, which the driver compiles for the GPU at hand. */
final class Ptx {
    static final String RESOURCE = "flover.ptx";

    private Ptx() {
    }

    /** The PTX, NUL-terminated as {@code cuModuleLoadData} wants it. */
    static byte[] load() {
        try (InputStream in = Ptx.class.getResourceAsStream(RESOURCE)) {
            if (in == null) {
                throw new IllegalStateException("the kernels' PTX (" + RESOURCE + ") is missing from the classpath");
            }
            byte[] ptx = in.readAllBytes();
            return Arrays.copyOf(ptx, ptx.length + 1);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
