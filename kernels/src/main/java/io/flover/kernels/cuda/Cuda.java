package io.flover.kernels.cuda;

import static jcuda.driver.JCudaDriver.cuDeviceGetCount;
import static jcuda.driver.JCudaDriver.cuInit;

import jcuda.CudaException;
import jcuda.driver.JCudaDriver;

/** Whether this machine can run the CUDA backend, and if not, why not in one line. */
public final class Cuda {
    /** Why JCuda's driver binding could not load, once it has failed: a failed class stays failed. */
    private static volatile String noDriver;

    private Cuda() {
    }

    /** Null when GPU {@code ordinal} can be opened; otherwise what is missing. */
    public static String unavailableReason(int ordinal) {
        try {
            requireDevice(ordinal);
            return null;
        } catch (CudaUnavailableException e) {
            return e.getMessage();
        }
    }

    /** @throws CudaUnavailableException naming what is missing */
    static void requireDevice(int ordinal) {
        int count;
        try {
            JCudaDriver.setExceptionsEnabled(true);
            cuInit(0);
            int[] n = new int[1];
            cuDeviceGetCount(n);
            count = n[0];
        } catch (LinkageError e) {
            // JCuda's native library links libcuda.so.1, which only an NVIDIA driver installs. Later attempts fail
            // only with "Could not initialize class": the first attempt's reason is the one to repeat.
            if (noDriver == null) {
                noDriver = "no CUDA driver: libcuda.so.1 (the NVIDIA driver) could not be loaded (" + firstLine(e) + ")";
            }
            throw new CudaUnavailableException(noDriver, e);
        } catch (CudaException e) {
            throw new CudaUnavailableException("the CUDA driver did not start: " + firstLine(e), e);
        }
        if (count == 0) {
            throw new CudaUnavailableException("no CUDA device: the driver sees no GPU", null);
        }
        if (ordinal < 0 || ordinal >= count) {
            throw new CudaUnavailableException("no CUDA device " + ordinal + ": the driver sees " + count
                    + " (cuda:0" + (count > 1 ? "..cuda:" + (count - 1) : "") + ")", null);
        }
    }

    static String firstLine(Throwable e) {
        String m = String.valueOf(e.getMessage());
        int nl = m.indexOf('\n');
        return nl < 0 ? m : m.substring(0, nl);
    }
}
