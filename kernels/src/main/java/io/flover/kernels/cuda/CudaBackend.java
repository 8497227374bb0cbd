package io.flover.kernels.cuda;

import static jcuda.driver.JCudaDriver.cuCtxSetCurrent;
import static jcuda.driver.JCudaDriver.cuDeviceGet;
import static jcuda.driver.JCudaDriver.cuDeviceGetCount;
import static jcuda.driver.JCudaDriver.cuDevicePrimaryCtxRelease;
import static jcuda.driver.JCudaDriver.cuDevicePrimaryCtxRetain;
import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventDestroy;
import static jcuda.driver.JCudaDriver.cuEventElapsedTime;
import static jcuda.driver.JCudaDriver.cuEventRecord;
import static jcuda.driver.JCudaDriver.cuEventSynchronize;
import static jcuda.driver.JCudaDriver.cuInit;
import static jcuda.driver.JCudaDriver.cuLaunchKernel;
import static jcuda.driver.JCudaDriver.cuMemAlloc;
import static jcuda.driver.JCudaDriver.cuMemAllocHost;
import static jcuda.driver.JCudaDriver.cuMemFree;
import static jcuda.driver.JCudaDriver.cuMemFreeHost;
import static jcuda.driver.JCudaDriver.cuMemGetInfo;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoDAsync;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoHAsync;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoDAsync;
import static jcuda.driver.JCudaDriver.cuModuleGetFunction;
import static jcuda.driver.JCudaDriver.cuModuleLoadData;
import static jcuda.driver.JCudaDriver.cuModuleUnload;
import static jcuda.driver.JCudaDriver.cuStreamCreate;
import static jcuda.driver.JCudaDriver.cuStreamDestroy;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;

import io.flover.kernels.Backend;
import io.flover.kernels.StepIndex;
import io.flover.model.DType;
import io.flover.model.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.Supplier;
import jcuda.Pointer;
import jcuda.cudaDataType;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import jcuda.driver.CUfunction;
import jcuda.driver.CUmodule;
import jcuda.driver.CUstream;
import jcuda.driver.JCudaDriver;
import jcuda.jcublas.JCublas2;
import jcuda.jcublas.cublasComputeType;
import jcuda.jcublas.cublasGemmAlgo;
import jcuda.jcublas.cublasHandle;
import jcuda.jcublas.cublasMath;
import jcuda.jcublas.cublasOperation;
import jcuda.runtime.cudaStream_t;

/**
 * The CUDA backend: Flover's own kernels ({@code src/main/cuda/flover.cu}, loaded as PTX) and cuBLAS GEMMs on one
 * NVIDIA GPU. Weights are uploaded once. Under {@link Precision#STORED} 16-bit weights stay 16-bit and multiply
 * 16-bit copies of the activations on tensor cores with float32 accumulation; float32 weights, and all weights
 * under {@link Precision#FLOAT32}, run full float32 GEMMs (no TF32), whose results match the CPU's to rounding.
 *
 * <p>One dedicated thread owns the device's context and stream, and every operation runs on it: callers hand work
 * over with {@link #onDevice}, which a model does once per forward, so that the step's kernel launches need no
 * further hand-off. Kernels are queued on the stream; only copies to the host wait for it.
 */
public final class CudaBackend implements Backend {
    /** Launch block widths, matching the launch shapes documented in flover.cu. */
    private static final int ROW_THREADS = 256;
    private static final int ROPE_THREADS = 128;
    private static final int ATTENTION_THREADS = 128;
    private static final int ARGMAX_THREADS = 1024;
    private static final int ELEMENTWISE_BLOCKS_MAX = 65535;
    private static final int GRID_Y_MAX = 65535;
    /** PA_MAX_HEAD_DIM of paged_attention. */
    private static final int MAX_HEAD_DIM = 256;
    /** Scratch allocations are aligned so that every buffer suits vectorised loads and cuBLAS. */
    private static final long ALIGN = 256;
    /** Uploads go through a pinned staging buffer in pieces of this size. */
    private static final int STAGING_BYTES = 16 << 20;

    /** The arithmetic of the GEMMs. */
    public enum Precision {
        /** 16-bit weights stay so and run on tensor cores: the serving default, as fast as the weights allow. */
        STORED,
        /** Every weight is widened to float32 on upload: the CPU's arithmetic, for checking against it. */
        FLOAT32
    }

    private record DeviceBuffer(CUdeviceptr ptr, long floats) implements Buffer {
    }

    private record DeviceMatrix(CUdeviceptr ptr, DType dtype, int rows, int cols) implements Matrix {
    }

    private record DeviceVector(CUdeviceptr ptr, int length) implements Vector {
    }

    private final class DeviceKvCache implements KvCache {
        private final CUdeviceptr keys;
        private final CUdeviceptr values;
        private final int numBlocks;
        private final int blockSize;
        private final int kvHeads;
        private final int headDim;
        private boolean freed;

        DeviceKvCache(int layers, int numBlocks, int blockSize, int kvHeads, int headDim) {
            this.numBlocks = numBlocks;
            this.blockSize = blockSize;
            this.kvHeads = kvHeads;
            this.headDim = headDim;
            long bytes = layers * layerBytes();
            this.keys = retained(bytes);
            this.values = retained(bytes);
        }

        CUdeviceptr keys() {
            return keys;
        }

        CUdeviceptr values() {
            return values;
        }

        @Override
        public int numBlocks() {
            return numBlocks;
        }

        @Override
        public int blockSize() {
            return blockSize;
        }

        int kvHeads() {
            return kvHeads;
        }

        int headDim() {
            return headDim;
        }

        /** Floats per position of one layer: all of this cache's KV heads. */
        int rowWidth() {
            return kvHeads * headDim;
        }

        long layerBytes() {
            return (long) numBlocks * blockSize * rowWidth() * Float.BYTES;
        }

        @Override
        public void close() {
            if (closed) {
                return; // the backend has freed everything
            }
            onDevice(() -> {
                if (!freed) {
                    freed = true;
                    cuStreamSynchronize(stream); // a queued step may still write it
                    release(keys);
                    release(values);
                }
                return null;
            });
        }
    }

    private final class DeviceForward implements Forward {
        private final StepIndex index;
        private final DeviceKvCache kv;
        /** Device int arrays: ids, positions, cache rows, flat block tables, per-token table starts, logit tokens. */
        private final CUdeviceptr ids;
        private final CUdeviceptr positions;
        private final CUdeviceptr cacheRows;
        private final CUdeviceptr tables;
        private final CUdeviceptr tableStarts;
        private final CUdeviceptr logitTokens;

        DeviceForward(StepIndex index, DeviceKvCache kv) {
            this.index = index;
            this.kv = kv;
            int tokens = index.tokens();
            // Sequences share one table array among their tokens: each is uploaded once.
            Map<int[], Integer> starts = new IdentityHashMap<>();
            int[] tableStart = new int[tokens];
            int tableInts = 0;
            for (int t = 0; t < tokens; t++) {
                Integer at = starts.get(index.blockTables()[t]);
                if (at == null) {
                    at = tableInts;
                    starts.put(index.blockTables()[t], at);
                    tableInts += index.blockTables()[t].length;
                }
                tableStart[t] = at;
            }
            int[] flatTables = new int[tableInts];
            starts.forEach((table, at) -> System.arraycopy(table, 0, flatTables, at, table.length));
            int[][] arrays = {index.ids(), index.positions(), index.cacheRows(kv.blockSize()), flatTables, tableStart,
                    index.logitTokens()};
            CUdeviceptr[] device = uploadInts(arrays);
            this.ids = device[0];
            this.positions = device[1];
            this.cacheRows = device[2];
            this.tables = device[3];
            this.tableStarts = device[4];
            this.logitTokens = device[5];
        }

        @Override
        public StepIndex index() {
            return index;
        }

        @Override
        public Buffer buffer(int floats) {
            return new DeviceBuffer(workspace.take((long) floats * Float.BYTES), floats);
        }

        @Override
        public void close() {
            checkThread();
            workspace.reset();
        }
    }

    /**
     * Per-step scratch: a bump allocator over one device allocation, reset when the step closes. A step that needs
     * more than it holds gets extra allocations, and the next step a single one of the size it took.
     */
    private final class Workspace {
        private CUdeviceptr base;
        private long capacity;
        private long used;
        private final List<CUdeviceptr> overflow = new ArrayList<>();

        CUdeviceptr take(long bytes) {
            long size = Math.max(ALIGN, Math.ceilDiv(bytes, ALIGN) * ALIGN);
            CUdeviceptr p;
            if (used + size <= capacity) {
                p = base.withByteOffset(used);
            } else {
                p = alloc(size);
                overflow.add(p);
            }
            used += size;
            return p;
        }

        void reset() {
            long wanted = used;
            used = 0;
            cuStreamSynchronize(stream); // kernels queued by the step may still read its buffers
            overflow.forEach(CudaBackend::free);
            overflow.clear();
            if (wanted > capacity) {
                free(base);
                // Empty until the larger one is there: if that allocation fails, the next step overflows instead.
                base = null;
                capacity = 0;
                base = alloc(wanted);
                capacity = wanted;
            }
        }

        void close() {
            overflow.forEach(CudaBackend::free);
            if (base != null) {
                free(base);
            }
        }
    }

    private final int ordinal;
    private final Precision precision;
    private final ExecutorService owner;
    private final Thread ownerThread;
    private final CUdevice device = new CUdevice();
    private final CUcontext context = new CUcontext();
    private final CUstream stream = new CUstream();
    private final CUmodule module = new CUmodule();
    private final cublasHandle cublas = new cublasHandle();
    private final Map<String, CUfunction> functions = new java.util.HashMap<>();
    private final Workspace workspace = new Workspace();
    private final List<CUdeviceptr> allocations = new ArrayList<>();
    /** The pinned host buffer of every copy; read and written as views of byte ranges, or as one segment. */
    private Pointer staging;
    private StagingViews stagingViews;
    private MemorySegment stagingSegment;
    /** Pinned host memory that collectives work in ({@link #hostSegment}), grown to the largest call. */
    private Pointer shared;
    private MemorySegment sharedSegment = MemorySegment.NULL;
    private CUdeviceptr half;
    private long halfBytes;
    private volatile boolean closed;

    private CudaBackend(int ordinal, Precision precision) {
        this.ordinal = ordinal;
        this.precision = precision;
        Thread[] made = new Thread[1];
        this.owner = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "flover-cuda-" + ordinal);
            t.setDaemon(true);
            made[0] = t;
            return t;
        });
        try {
            submit(this::init);
        } catch (RuntimeException | Error e) {
            owner.shutdownNow();
            throw e;
        }
        this.ownerThread = made[0];
    }

    /**
     * Opens GPU {@code ordinal}: its context, a stream, the kernels and cuBLAS.
     *
     * @throws CudaUnavailableException naming what is missing: the driver, a device, that ordinal
     */
    public static CudaBackend open(int ordinal, Precision precision) {
        Cuda.requireDevice(ordinal);
        try {
            return new CudaBackend(ordinal, precision);
        } catch (LinkageError e) {
            // The driver loaded, so this is cuBLAS: JCublas' native library links libcublas.so.12.
            throw new CudaUnavailableException("cuBLAS could not be loaded (" + Cuda.firstLine(e) + "); on a host "
                    + "with CUDA 13 libraries only, see deploy/README.md on CUDA 12 libraries", e);
        }
    }

    private Void init() {
        JCudaDriver.setExceptionsEnabled(true);
        JCublas2.setExceptionsEnabled(true);
        cuInit(0);
        cuDeviceGet(device, ordinal);
        cuDevicePrimaryCtxRetain(context, device);
        cuCtxSetCurrent(context);
        cuStreamCreate(stream, 0);
        cuModuleLoadData(module, Ptx.load());
        JCublas2.cublasCreate(cublas);
        JCublas2.cublasSetStream(cublas, new cudaStream_t(stream));
        // Float32 GEMMs stay float32 (no TF32): the exactness tests compare them with the CPU's.
        JCublas2.cublasSetMathMode(cublas, cublasMath.CUBLAS_DEFAULT_MATH);
        staging = new Pointer();
        cuMemAllocHost(staging, STAGING_BYTES);
        ByteBuffer stagingBytes = staging.getByteBuffer(0, STAGING_BYTES);
        stagingViews = new StagingViews(stagingBytes);
        stagingSegment = MemorySegment.ofBuffer(stagingBytes);
        workspace.base = alloc(ALIGN);
        workspace.capacity = ALIGN;
        return null;
    }

    @Override
    public String device() {
        return "cuda:" + ordinal;
    }

    /** Free and total device memory in bytes, now. */
    public long[] memoryInfo() {
        return onDevice(() -> {
            long[] free = new long[1];
            long[] total = new long[1];
            cuMemGetInfo(free, total);
            return new long[] {free[0], total[0]};
        });
    }

    /**
     * Bytes left for the KV cache if the process may use {@code fraction} of the device's memory in all, of which
     * what it holds already (weights) and {@code reserve} (a step's scratch, cuBLAS workspaces) are not KV.
     */
    public long kvBudget(double fraction, long reserve) {
        long[] info = memoryInfo();
        long usedByOthersAndUs = info[1] - info[0];
        return (long) (info[1] * fraction) - usedByOthersAndUs - reserve;
    }

    /**
     * The device memory's bandwidth as copies measure it: bytes read plus bytes written per second by a
     * device-to-device copy of {@code bytes}, the fastest of {@code runs} after one untimed copy (the figure CUDA's
     * bandwidthTest reports). It bounds any step that must read its weights once.
     */
    public double copyBandwidth(long bytes, int runs) {
        return onDevice(() -> {
            CUdeviceptr src = alloc(bytes);
            CUdeviceptr dst = alloc(bytes);
            CUevent start = new CUevent();
            CUevent end = new CUevent();
            cuEventCreate(start, CUevent_flags.CU_EVENT_DEFAULT);
            cuEventCreate(end, CUevent_flags.CU_EVENT_DEFAULT);
            try {
                float best = Float.POSITIVE_INFINITY;
                float[] millis = new float[1];
                for (int i = 0; i <= runs; i++) {
                    cuEventRecord(start, stream);
                    cuMemcpyDtoDAsync(dst, src, bytes, stream);
                    cuEventRecord(end, stream);
                    cuEventSynchronize(end);
                    cuEventElapsedTime(millis, start, end);
                    best = i == 0 ? best : Math.min(best, millis[0]);
                }
                return 2.0 * bytes / (best / 1e3);
            } finally {
                cuEventDestroy(start);
                cuEventDestroy(end);
                free(src);
                free(dst);
            }
        });
    }

    @Override
    public <T> T onDevice(Supplier<T> work) {
        return Thread.currentThread() == ownerThread ? work.get() : submit(work::get);
    }

    /**
     * Runs {@code work} on the owner thread and waits for it, through interrupts: work queued on a GPU cannot be
     * taken back, and a caller that stopped waiting would leave it running against state it may free next (the
     * CPU backend ignores interrupts in a forward too). The interrupt stays set for the caller to see afterwards.
     */
    private <T> T submit(java.util.concurrent.Callable<T> work) {
        Future<T> f = owner.submit(work);
        boolean interrupted = false;
        try {
            while (true) {
                try {
                    return f.get();
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException r) {
                throw r;
            }
            if (e.getCause() instanceof Error err) {
                throw err;
            }
            throw new IllegalStateException(e.getCause());
        } finally {
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    private void checkThread() {
        if (Thread.currentThread() != ownerThread) {
            throw new IllegalStateException("CUDA backend " + device() + " used off its device thread: wrap the "
                    + "work in onDevice");
        }
        if (closed) {
            throw new IllegalStateException("CUDA backend " + device() + " is closed");
        }
    }

    @Override
    public Matrix matrix(Tensor quantizedOrNot) {
        // Block-quantized weights are dequantised on the host, then served as BF16 (or, for FLOAT32, F32) weights are.
        Tensor w = quantizedOrNot.dtype().quantized()
                ? quantizedOrNot.convert(precision == Precision.STORED ? DType.BF16 : DType.F32, Arena.ofAuto())
                : quantizedOrNot;
        return onDevice(() -> {
            CUdeviceptr stored = upload(w.data());
            if (w.dtype() == DType.F32 || precision == Precision.STORED) {
                allocations.add(stored);
                return new DeviceMatrix(stored, w.dtype(), w.rows(), w.cols());
            }
            long elements = (long) w.rows() * w.cols();
            CUdeviceptr widened = retained(elements * Float.BYTES);
            launch1d(w.dtype() == DType.BF16 ? "bf16_to_f32" : "f16_to_f32", elements, stored, widened, elements);
            cuStreamSynchronize(stream);
            free(stored);
            return new DeviceMatrix(widened, DType.F32, w.rows(), w.cols());
        });
    }

    @Override
    public Vector vector(float[] values) {
        return onDevice(() -> {
            CUdeviceptr p = upload(MemorySegment.ofArray(values));
            allocations.add(p);
            return new DeviceVector(p, values.length);
        });
    }

    @Override
    public int maxHeadDim() {
        return MAX_HEAD_DIM;
    }

    @Override
    public KvCache kvCache(int layers, int numBlocks, int blockSize, int kvHeads, int headDim) {
        if (headDim > MAX_HEAD_DIM) {
            throw new IllegalArgumentException("the CUDA attention kernel takes heads of up to " + MAX_HEAD_DIM
                    + " elements, this model's have " + headDim);
        }
        return onDevice(() -> new DeviceKvCache(layers, numBlocks, blockSize, kvHeads, headDim));
    }

    @Override
    public Forward forward(StepIndex index, KvCache kv) {
        checkThread();
        DeviceKvCache cache = (DeviceKvCache) kv;
        if (cache.freed) {
            throw new IllegalStateException("a step on a KV cache that was closed");
        }
        return new DeviceForward(index, cache);
    }

    @Override
    public void embedding(Forward step, Matrix table, int firstId, Buffer out) {
        DeviceForward s = (DeviceForward) step;
        embed(s, deviceMatrix(table), firstId, s.ids, out);
    }

    @Override
    public void positionEmbedding(Forward step, Matrix table, Buffer out) {
        DeviceForward s = (DeviceForward) step;
        embed(s, deviceMatrix(table), 0, s.positions, out);
    }

    private void embed(DeviceForward s, DeviceMatrix table, int firstId, CUdeviceptr ids, Buffer out) {
        String kernel = switch (table.dtype()) {
            case F32 -> "embedding_f32";
            case BF16 -> "embedding_bf16";
            case F16 -> "embedding_f16";
            default -> throw new IllegalStateException(table.dtype() + " tables are converted at upload");
        };
        int tokens = s.index.tokens();
        launch(kernel, tokens, 1, ROW_THREADS, 0, table.ptr(), table.rows(), table.cols(), firstId, ids, tokens,
                ptr(out));
    }

    @Override
    public void matmul(Buffer x, int rows, Matrix w, Buffer out) {
        checkThread();
        DeviceMatrix m = deviceMatrix(w);
        if (rows == 0) {
            return;
        }
        // Row-major out[rows][n] = x[rows][k] * w[n][k]^T is, column-major, out^T = w^T(k x n)^T * x^T: A = w
        // transposed, B = x as stored.
        int n = m.rows();
        int k = m.cols();
        Pointer one = Pointer.to(new float[] {1f});
        Pointer zero = Pointer.to(new float[] {0f});
        if (m.dtype() == DType.F32) {
            JCublas2.cublasSgemm(cublas, cublasOperation.CUBLAS_OP_T, cublasOperation.CUBLAS_OP_N, n, rows, k,
                    one, m.ptr(), k, ptr(x), k, zero, ptr(out), n);
            return;
        }
        long elements = (long) rows * k;
        CUdeviceptr x16 = halfActivations(elements * 2);
        launch1d(m.dtype() == DType.BF16 ? "f32_to_bf16" : "f32_to_f16", elements, ptr(x), x16, elements);
        int type = m.dtype() == DType.BF16 ? cudaDataType.CUDA_R_16BF : cudaDataType.CUDA_R_16F;
        // The _new wrapper takes a cublasComputeType; JCublas' cublasGemmEx takes the legacy cudaDataType there and
        // answers CUBLAS_COMPUTE_32F with NOT_SUPPORTED, without raising it as an exception.
        JCublas2.cublasGemmEx_new(cublas, cublasOperation.CUBLAS_OP_T, cublasOperation.CUBLAS_OP_N, n, rows, k,
                one, m.ptr(), type, k, x16, type, k, zero, ptr(out), cudaDataType.CUDA_R_32F, n,
                cublasComputeType.CUBLAS_COMPUTE_32F, cublasGemmAlgo.CUBLAS_GEMM_DEFAULT);
    }

    @Override
    public void rmsNorm(Buffer x, Buffer out, int rows, Vector weight, float eps) {
        DeviceVector w = deviceVector(weight);
        launch("rms_norm", rows, 1, ROW_THREADS, 0, ptr(x), ptr(out), w.ptr(), w.length(), eps);
    }

    @Override
    public void layerNorm(Buffer x, Buffer out, int rows, Vector weight, Vector bias, float eps) {
        DeviceVector w = deviceVector(weight);
        launch("layer_norm", rows, 1, ROW_THREADS, 0, ptr(x), ptr(out), w.ptr(), deviceVector(bias).ptr(), w.length(),
                eps);
    }

    @Override
    public void addBias(Buffer x, int rows, Vector bias) {
        DeviceVector b = deviceVector(bias);
        launch1d("add_bias", (long) rows * b.length(), ptr(x), b.ptr(), rows, b.length());
    }

    @Override
    public void add(Buffer acc, Buffer x, int n) {
        launch1d("add", n, ptr(acc), ptr(x), n);
    }

    @Override
    public void swiglu(Buffer gate, Buffer up, int n) {
        launch1d("silu_mul", n, ptr(gate), ptr(up), n);
    }

    @Override
    public void geluNew(Buffer x, int n) {
        launch1d("gelu_new", n, ptr(x), n);
    }

    @Override
    public void rope(Forward step, Buffer x, int heads, Vector invFreq) {
        DeviceForward s = (DeviceForward) step;
        DeviceVector f = deviceVector(invFreq);
        int tokens = s.index.tokens();
        launch("rope", tokens, 1, ROPE_THREADS, 0, ptr(x), s.positions, f.ptr(), tokens, heads, 2 * f.length());
    }

    @Override
    public void writeKv(Forward step, int layer, Buffer k, Buffer v) {
        DeviceForward s = (DeviceForward) step;
        DeviceKvCache kv = s.kv;
        int tokens = s.index.tokens();
        long at = layer * kv.layerBytes();
        launch("kv_write", tokens, 1, ROW_THREADS, 0, ptr(k), ptr(v), kv.keys().withByteOffset(at),
                kv.values().withByteOffset(at), s.cacheRows, tokens, kv.rowWidth());
    }

    @Override
    public void attention(Forward step, Buffer q, Buffer out, int layer, int heads) {
        DeviceForward s = (DeviceForward) step;
        DeviceKvCache kv = s.kv;
        int tokens = s.index.tokens();
        long at = layer * kv.layerBytes();
        float scale = (float) (1.0 / Math.sqrt(kv.headDim()));
        // grid.y is at most 65535: beyond that, blocks stride over the tokens.
        launch("paged_attention", heads, Math.min(tokens, GRID_Y_MAX), ATTENTION_THREADS, 0, ptr(q), ptr(out),
                kv.keys().withByteOffset(at), kv.values().withByteOffset(at), s.tables, s.tableStarts, s.positions,
                tokens, heads, kv.kvHeads(), kv.headDim(), kv.blockSize(), scale);
    }

    @Override
    public void gatherLogitRows(Forward step, Buffer x, int d, Buffer out) {
        DeviceForward s = (DeviceForward) step;
        int rows = s.index.logitTokens().length;
        if (rows > 0) {
            launch("gather_rows", rows, 1, ROW_THREADS, 0, ptr(x), s.logitTokens, d, ptr(out), rows);
        }
    }

    @Override
    public void argmaxRows(Buffer x, int rows, int width, int[] ids, float[] maxima) {
        checkThread();
        if (rows == 0) {
            return;
        }
        long intBytes = (long) rows * Integer.BYTES;
        CUdeviceptr out = workspace.take(2 * intBytes); // ids, then maxima
        launch("argmax_rows", Math.min(rows, ELEMENTWISE_BLOCKS_MAX), 1, ARGMAX_THREADS, 0, ptr(x), width, rows, out,
                out.withByteOffset(intBytes));
        download(out, 2 * intBytes);
        stagingViews.ints(0, rows).get(ids, 0, rows);
        stagingViews.floats(intBytes, rows).get(maxima, 0, rows);
    }

    @Override
    public float[] toHost(Buffer b, int n) {
        checkThread();
        float[] host = new float[n];
        long bytes = (long) n * Float.BYTES;
        for (long done = 0; done < bytes; done += STAGING_BYTES) {
            long part = Math.min(STAGING_BYTES, bytes - done);
            int floats = (int) (part / Float.BYTES);
            download(ptr(b).withByteOffset(done), part);
            stagingViews.floats(0, floats).get(host, (int) (done / Float.BYTES), floats);
        }
        return host;
    }

    @Override
    public MemorySegment hostSegment(Buffer b, int n) {
        checkThread();
        long bytes = (long) n * Float.BYTES;
        if (bytes > sharedSegment.byteSize()) {
            cuStreamSynchronize(stream); // a queued copy may still read the old one
            if (shared != null) {
                cuMemFreeHost(shared);
                shared = null;
                sharedSegment = MemorySegment.NULL;
            }
            Pointer grown = new Pointer();
            cuMemAllocHost(grown, bytes);
            shared = grown;
            sharedSegment = MemorySegment.ofBuffer(grown.getByteBuffer(0, bytes));
        }
        cuMemcpyDtoHAsync(shared, ptr(b), bytes, stream);
        cuStreamSynchronize(stream);
        return sharedSegment.asSlice(0, bytes);
    }

    @Override
    public void fromHost(MemorySegment host, Buffer b, int n) {
        checkThread();
        long bytes = (long) n * Float.BYTES;
        if (host.isNative() && host.address() == sharedSegment.address()) {
            // Later host writes to it come only after the next hostSegment, which waits for this copy.
            cuMemcpyHtoDAsync(ptr(b), shared, bytes, stream);
            return;
        }
        for (long done = 0; done < bytes; done += STAGING_BYTES) {
            long part = Math.min(STAGING_BYTES, bytes - done);
            cuStreamSynchronize(stream); // the staging buffer may still feed the previous copy
            stagingSegment.asSlice(0, part).copyFrom(host.asSlice(done, part));
            cuMemcpyHtoDAsync(ptr(b).withByteOffset(done), staging, part, stream);
        }
    }

    /** Copies {@code bytes} (at most the staging size) from the device to the start of staging, after the queued work. */
    private void download(CUdeviceptr from, long bytes) {
        cuMemcpyDtoHAsync(staging, from, bytes, stream);
        cuStreamSynchronize(stream);
    }

    /** Device copies of {@code arrays}, from the step's workspace, in one copy through the pinned staging buffer. */
    private CUdeviceptr[] uploadInts(int[][] arrays) {
        long[] offsets = new long[arrays.length];
        long bytes = 0;
        for (int i = 0; i < arrays.length; i++) {
            offsets[i] = bytes;
            bytes += Math.ceilDiv((long) Math.max(1, arrays[i].length) * Integer.BYTES, ALIGN) * ALIGN;
        }
        if (bytes > STAGING_BYTES) {
            throw new IllegalArgumentException("a step's index of " + bytes + " bytes exceeds the staging buffer");
        }
        CUdeviceptr base = workspace.take(bytes);
        cuStreamSynchronize(stream); // the staging buffer may still feed an earlier copy
        CUdeviceptr[] device = new CUdeviceptr[arrays.length];
        for (int i = 0; i < arrays.length; i++) {
            stagingViews.ints(offsets[i], arrays[i].length).put(arrays[i]);
            device[i] = base.withByteOffset(offsets[i]);
        }
        cuMemcpyHtoDAsync(base, staging, bytes, stream);
        return device;
    }

    /**
     * The buffer every 16-bit GEMM converts its activations into. One serves all: the stream runs each conversion
     * and its GEMM before the next conversion, so a step's GEMMs need no scratch of their own.
     */
    private CUdeviceptr halfActivations(long bytes) {
        if (bytes > halfBytes) {
            cuStreamSynchronize(stream); // a queued GEMM may still read the old one
            long size = Math.max(bytes, 2 * halfBytes);
            if (half != null) {
                free(half);
                half = null;
                halfBytes = 0;
            }
            half = alloc(size);
            halfBytes = size;
        }
        return half;
    }

    /** A device copy of {@code data}, through the pinned staging buffer. */
    private CUdeviceptr upload(MemorySegment data) {
        long bytes = data.byteSize();
        CUdeviceptr p = alloc(bytes);
        for (long done = 0; done < bytes; done += STAGING_BYTES) {
            long part = Math.min(STAGING_BYTES, bytes - done);
            cuStreamSynchronize(stream);
            stagingSegment.copyFrom(data.asSlice(done, part));
            cuMemcpyHtoDAsync(p.withByteOffset(done), staging, part, stream);
        }
        cuStreamSynchronize(stream);
        return p;
    }

    private CUdeviceptr retained(long bytes) {
        CUdeviceptr p = alloc(bytes);
        allocations.add(p);
        return p;
    }

    /** Frees one of the backend's lasting allocations before the backend closes. */
    private void release(CUdeviceptr p) {
        allocations.remove(p);
        free(p);
    }

    private static CUdeviceptr alloc(long bytes) {
        CUdeviceptr p = new CUdeviceptr();
        cuMemAlloc(p, Math.max(1, bytes));
        return p;
    }

    private static void free(CUdeviceptr p) {
        cuMemFree(p);
    }

    /** A grid-stride kernel over {@code n} elements. */
    private void launch1d(String kernel, long n, Object... args) {
        int blocks = (int) Math.max(1, Math.min(ELEMENTWISE_BLOCKS_MAX, Math.ceilDiv(n, ROW_THREADS)));
        launch(kernel, blocks, 1, ROW_THREADS, 0, args);
    }

    private void launch(String kernel, int gridX, int gridY, int block, int sharedBytes, Object... args) {
        checkThread();
        if (gridX == 0 || gridY == 0) {
            return; // e.g. the final norm of a step that samples nothing: the driver refuses an empty grid
        }
        Pointer[] params = new Pointer[args.length];
        for (int i = 0; i < args.length; i++) {
            params[i] = switch (args[i]) {
                case CUdeviceptr p -> Pointer.to(p);
                case Integer v -> Pointer.to(new int[] {v});
                case Long v -> Pointer.to(new long[] {v});
                case Float v -> Pointer.to(new float[] {v});
                default -> throw new IllegalArgumentException("kernel argument " + args[i]);
            };
        }
        CUfunction f = functions.computeIfAbsent(kernel, k -> {
            CUfunction fn = new CUfunction();
            cuModuleGetFunction(fn, module, k);
            return fn;
        });
        cuLaunchKernel(f, gridX, gridY, 1, block, 1, 1, sharedBytes, stream, Pointer.to(params), null);
    }

    private static CUdeviceptr ptr(Buffer b) {
        return ((DeviceBuffer) b).ptr();
    }

    private DeviceMatrix deviceMatrix(Matrix m) {
        checkThread();
        return (DeviceMatrix) m;
    }

    private DeviceVector deviceVector(Vector v) {
        return (DeviceVector) v;
    }

    /** Frees every allocation and the context's hold on the device. Idempotent. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        try {
            onDevice(() -> {
                // Each step on its own: after a kernel fault every call fails, and the context must still be let go.
                RuntimeException first = null;
                List<Runnable> steps = new ArrayList<>(List.of(() -> cuStreamSynchronize(stream), workspace::close));
                if (half != null) {
                    steps.add(() -> free(half));
                }
                allocations.forEach(p -> steps.add(() -> free(p)));
                if (shared != null) {
                    steps.add(() -> cuMemFreeHost(shared));
                }
                steps.addAll(List.of(() -> cuMemFreeHost(staging), () -> JCublas2.cublasDestroy(cublas),
                        () -> cuModuleUnload(module), () -> cuStreamDestroy(stream),
                        () -> cuDevicePrimaryCtxRelease(device)));
                for (Runnable step : steps) {
                    try {
                        step.run();
                    } catch (RuntimeException e) {
                        if (first == null) {
                            first = e;
                        } else {
                            first.addSuppressed(e);
                        }
                    }
                }
                allocations.clear();
                closed = true;
                if (first != null) {
                    throw first;
                }
                return null;
            });
        } finally {
            owner.shutdown();
        }
    }

    static int deviceCount() {
        int[] count = new int[1];
        cuDeviceGetCount(count);
        return count[0];
    }
}
