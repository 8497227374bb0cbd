package io.flover.kernels.cuda;

/** No GPU can be used: the message names what is missing (the driver, a device, that ordinal). */
public final class CudaUnavailableException extends RuntimeException {
    CudaUnavailableException(String message, Throwable cause) {
        super(message, cause);
    }
}
