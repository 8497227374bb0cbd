package io.flover.cli;

import io.flover.kernels.Device;
import io.flover.worker.KvMemory;
import picocli.CommandLine.Option;

/** The KV cache's size, shared by the commands that hold one: {@code serve}, {@code worker}, {@code bench flover}. */
final class KvMemoryFlags {
    @Option(names = "--kv-memory", paramLabel = "SIZE", defaultValue = "1g",
            description = "memory for the KV cache, e.g. 512m or 2g (default: ${DEFAULT-VALUE})")
    String size;

    @Option(names = "--gpu-memory-fraction", paramLabel = "F",
            description = "with --device cuda: size the KV cache so that this process uses this fraction of the "
                    + "GPU's memory in all, weights included (instead of --kv-memory)")
    Double gpuFraction;

    /** The KV memory on {@code device}, or an IllegalArgumentException naming the flag that is wrong. */
    KvMemory kvMemory(Device device) {
        long bytes = ByteSize.parse("--kv-memory", size);
        Flags.require(gpuFraction == null || device.cuda(), "--gpu-memory-fraction needs --device cuda");
        Flags.require(gpuFraction == null || (gpuFraction > 0 && gpuFraction <= 1),
                "--gpu-memory-fraction must be in (0, 1], got " + gpuFraction);
        return new KvMemory(bytes, gpuFraction == null ? 0 : gpuFraction);
    }

    /** How the KV cache is sized, for logs and reports. */
    String describe() {
        return gpuFraction != null ? "GPU memory fraction " + gpuFraction : size;
    }
}
