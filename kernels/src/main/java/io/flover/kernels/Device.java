package io.flover.kernels;

import io.flover.kernels.cpu.CpuBackend;
import io.flover.kernels.cuda.CudaBackend;

/** Where a model runs: the CPU, or GPU {@code ordinal} ({@code cuda:N}). */
public record Device(boolean cuda, int ordinal) {
    public static final Device CPU = new Device(false, 0);

    /** Parses {@code cpu}, {@code cuda} (GPU 0) or {@code cuda:N}; errors name {@code flag}. */
    public static Device parse(String flag, String spec) {
        if (spec.equals("cpu")) {
            return CPU;
        }
        if (spec.equals("cuda")) {
            return new Device(true, 0);
        }
        if (spec.startsWith("cuda:")) {
            try {
                int ordinal = Integer.parseInt(spec.substring("cuda:".length()));
                if (ordinal >= 0) {
                    return new Device(true, ordinal);
                }
            } catch (NumberFormatException e) {
                // falls through to the error below
            }
        }
        throw new IllegalArgumentException(flag + " must be cpu, cuda or cuda:N, got '" + spec + "'");
    }

    /**
     * A backend of its own on this device, whose resources (CPU threads, or a GPU context and its memory) are freed
     * when it is closed. {@code cpuThreads} is what the CPU computes with.
     *
     * @throws io.flover.kernels.cuda.CudaUnavailableException naming what is missing for a GPU
     */
    public Backend open(int cpuThreads) {
        return cuda ? CudaBackend.open(ordinal, CudaBackend.Precision.STORED) : CpuBackend.owning(cpuThreads);
    }

    @Override
    public String toString() {
        return cuda ? "cuda:" + ordinal : "cpu";
    }
}
