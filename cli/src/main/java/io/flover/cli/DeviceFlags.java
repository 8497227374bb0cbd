package io.flover.cli;

import io.flover.kernels.Device;
import io.flover.kernels.cuda.Cuda;
import picocli.CommandLine.Option;

/** {@code --device}, shared by the commands that run a model. */
final class DeviceFlags {
    @Option(names = "--device", paramLabel = "DEVICE", defaultValue = "cpu",
            description = "where the model runs: cpu, cuda or cuda:N (default: ${DEFAULT-VALUE})")
    String spec;

    /**
     * The device, checked before anything is loaded: a GPU that cannot be opened is an IllegalArgumentException
     * naming the flag and what is missing (the driver, any GPU, that ordinal), in one line.
     */
    Device device() {
        Device on = Device.parse("--device", spec);
        String missing = on.cuda() ? Cuda.unavailableReason(on.ordinal()) : null;
        Flags.require(missing == null, "--device " + on + ": " + missing);
        return on;
    }
}
