// Flover's CUDA kernels: the device side of the CUDA backend (io.flover.kernels.cuda).
//
// The host loads the PTX built from this file (build-ptx.sh) with cuModuleLoadData and launches each kernel by
// name, so names and parameter order are an interface: change them together with the Java side and with
// PtxSourcesTest, which checks every name and parameter list against the PTX.
//
// Conventions: activations are row-major float32; `int` is 32 bits and `long` 64 bits (Linux x86-64 and
// aarch64), so the host passes Java ints and longs; pointers are device addresses. Each kernel's launch shape is
// the "Launch:" line right above it. Where a kernel has a count parameter its grid may be smaller than the count
// (blocks or threads stride over the work), so the host may cap grids; where it has none, the grid is the count.
//
// Arithmetic follows the float32 CPU kernels (io.flover.kernels.cpu.CpuKernels) closely enough for logits to
// agree within 1e-3: IEEE expf/tanhf/sqrt, no fast-math intrinsics, and doubles where the CPU uses them.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math_constants.h>

#define FULL_MASK 0xffffffffu

// ---------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------

__device__ __forceinline__ float warp_sum(float v) {
    // xor butterfly: every lane ends with the full sum, so no broadcast is needed afterwards.
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        v += __shfl_xor_sync(FULL_MASK, v, o);
    }
    return v;
}

// Sum of v over the block, returned to every thread. blockDim.x must be a multiple of 32 (full warps for the
// shuffles) and at most 1024. Every thread of the block must call it (it synchronises).
__device__ float block_sum(float v) {
    __shared__ float partial[32];
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int warps = blockDim.x >> 5;
    v = warp_sum(v);
    // A second call reuses partial: wait until every warp has read the first call's values.
    __syncthreads();
    if (lane == 0) {
        partial[warp] = v;
    }
    __syncthreads();
    // Each warp reduces the partials itself (in the same order), which saves a broadcast through shared memory.
    return warp_sum(lane < warps ? partial[lane] : 0.0f);
}

__device__ __forceinline__ float bf16_bits_to_float(unsigned short u) {
    // bf16 is the top half of a float32: widening is a shift, exact for every value including NaN payloads.
    return __uint_as_float(static_cast<unsigned int>(u) << 16);
}

__device__ __forceinline__ float f16_bits_to_float(unsigned short u) {
    return __half2float(__ushort_as_half(u));
}

struct WidenF32 {
    __device__ static float get(const float* p, size_t i) { return p[i]; }
};
struct WidenBf16 {
    __device__ static float get(const unsigned short* p, size_t i) { return bf16_bits_to_float(p[i]); }
};
struct WidenF16 {
    __device__ static float get(const unsigned short* p, size_t i) { return f16_bits_to_float(p[i]); }
};

// ---------------------------------------------------------------------------------------------------------------
// Embedding lookup
// ---------------------------------------------------------------------------------------------------------------

template <typename T, typename Widen>
__device__ void embedding(const T* table, int rows, int d, int firstId, const int* ids, int tokens, float* out) {
    for (int t = blockIdx.x; t < tokens; t += gridDim.x) {
        // In 64 bits: ids from a client are not trusted, and id - firstId may overflow an int.
        const long long r = static_cast<long long>(ids[t]) - firstId;
        float* o = out + static_cast<size_t>(t) * d;
        if (r < 0 || r >= rows) {
            // An id outside this shard's rows: zero, so that summing the shards' rows gives the embedding.
            for (int i = threadIdx.x; i < d; i += blockDim.x) {
                o[i] = 0.0f;
            }
        } else {
            const size_t base = static_cast<size_t>(r) * d;
            for (int i = threadIdx.x; i < d; i += blockDim.x) {
                o[i] = Widen::get(table, base + i);
            }
        }
    }
}

// out[t][i] = table[ids[t] - firstId][i] for a float32 table of rows x d, or 0 where the row is outside the table.
// Launch: grid=(tokens), block=256.
extern "C" __global__ void embedding_f32(const float* table, int rows, int d, int firstId, const int* ids,
                                         int tokens, float* out) {
    embedding<float, WidenF32>(table, rows, d, firstId, ids, tokens, out);
}

// As embedding_f32 for a bfloat16 table (raw 16-bit patterns), widened to float32.
// Launch: grid=(tokens), block=256.
extern "C" __global__ void embedding_bf16(const unsigned short* table, int rows, int d, int firstId, const int* ids,
                                          int tokens, float* out) {
    embedding<unsigned short, WidenBf16>(table, rows, d, firstId, ids, tokens, out);
}

// As embedding_f32 for a float16 table (raw 16-bit patterns), widened to float32.
// Launch: grid=(tokens), block=256.
extern "C" __global__ void embedding_f16(const unsigned short* table, int rows, int d, int firstId, const int* ids,
                                         int tokens, float* out) {
    embedding<unsigned short, WidenF16>(table, rows, d, firstId, ids, tokens, out);
}

// ---------------------------------------------------------------------------------------------------------------
// Normalisation
// ---------------------------------------------------------------------------------------------------------------

// RMSNorm of row blockIdx.x (width d): out = x / sqrt(mean(x^2) + eps) * weight. x and out may be the same buffer:
// each thread reads its elements before it writes them, and all reads of the sum pass end at the block reduction.
// Launch: grid=(rows), block=256.
extern "C" __global__ void rms_norm(const float* x, float* out, const float* weight, int d, float eps) {
    const size_t base = static_cast<size_t>(blockIdx.x) * d;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        const float v = x[base + i];
        ss += v * v;
    }
    ss = block_sum(ss);
    // As the CPU kernel: the float sum of squares, then the scale in double.
    const float inv = static_cast<float>(1.0 / sqrt(static_cast<double>(ss) / d + static_cast<double>(eps)));
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        out[base + i] = x[base + i] * inv * weight[i];
    }
}

// LayerNorm of row blockIdx.x (width d): out = (x - mean) / sqrt(var + eps) * weight + bias. May run in place.
// Launch: grid=(rows), block=256.
extern "C" __global__ void layer_norm(const float* x, float* out, const float* weight, const float* bias, int d,
                                      float eps) {
    const size_t base = static_cast<size_t>(blockIdx.x) * d;
    float sum = 0.0f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        sum += x[base + i];
    }
    const float mean = block_sum(sum) / d;
    // Two passes: the variance of centred values does not cancel catastrophically as E[x^2] - mean^2 can.
    float var = 0.0f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        const float c = x[base + i] - mean;
        var += c * c;
    }
    var = block_sum(var);
    const float inv = static_cast<float>(1.0 / sqrt(static_cast<double>(var) / d + static_cast<double>(eps)));
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        out[base + i] = (x[base + i] - mean) * inv * weight[i] + bias[i];
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Element-wise
// ---------------------------------------------------------------------------------------------------------------

// Grid-stride indices in 64 bits, so that i + stride cannot overflow near the top of the int range.
#define GRID_STRIDE(i, n)                                                                                       \
    for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n);                  \
         i += static_cast<long long>(blockDim.x) * gridDim.x)

// gate[i] = silu(gate[i]) * up[i] = gate[i] / (1 + exp(-gate[i])) * up[i] (SwiGLU).
// Launch: grid=(ceil(n/256)) or fewer, block=256.
extern "C" __global__ void silu_mul(float* gate, const float* up, int n) {
    GRID_STRIDE(i, n) {
        const float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

// GPT-2's tanh approximation of GELU, in place.
// Launch: grid=(ceil(n/256)) or fewer, block=256.
extern "C" __global__ void gelu_new(float* x, int n) {
    const float c = 0.7978845608028654f;  // (float) sqrt(2 / pi), as the CPU kernel rounds it
    GRID_STRIDE(i, n) {
        const float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(c * (v + 0.044715f * v * v * v)));
    }
}

// acc[i] += x[i]: the residual connection.
// Launch: grid=(ceil(n/256)) or fewer, block=256.
extern "C" __global__ void add(float* acc, const float* x, int n) {
    GRID_STRIDE(i, n) {
        acc[i] += x[i];
    }
}

// x[r][i] += bias[i] for every row r of rows x d.
// Launch: grid=(ceil(rows*d/256)) or fewer, block=256.
extern "C" __global__ void add_bias(float* x, const float* bias, int rows, int d) {
    const long long n = static_cast<long long>(rows) * d;
    GRID_STRIDE(i, n) {
        x[i] += bias[i % d];
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Rotary position embedding
// ---------------------------------------------------------------------------------------------------------------

#define ROPE_MAX_HALF 512

// Hugging Face's "rotate half" RoPE, in place on x (tokens x heads x headDim): element i of each head is rotated
// with element i + headDim/2 by the angle positions[t] * invFreq[i].
// Launch: grid=(tokens), block=128.
extern "C" __global__ void rope(float* x, const int* positions, const float* invFreq, int tokens, int heads,
                                int headDim) {
    // A token's heads share its angles: compute each cos/sin once (in double, as the CPU kernel: a float angle
    // loses too much at positions in the thousands) and keep them in shared memory for all heads.
    __shared__ float cosShared[ROPE_MAX_HALF];
    __shared__ float sinShared[ROPE_MAX_HALF];
    const int half = headDim / 2;
    const bool cached = half <= ROPE_MAX_HALF;
    const int pairs = heads * half;
    for (int t = blockIdx.x; t < tokens; t += gridDim.x) {
        const double p = static_cast<double>(positions[t]);
        if (cached) {
            for (int i = threadIdx.x; i < half; i += blockDim.x) {
                double s, c;
                sincos(p * static_cast<double>(invFreq[i]), &s, &c);
                cosShared[i] = static_cast<float>(c);
                sinShared[i] = static_cast<float>(s);
            }
            __syncthreads();
        }
        float* row = x + static_cast<size_t>(t) * heads * headDim;
        for (int j = threadIdx.x; j < pairs; j += blockDim.x) {
            const int h = j / half;
            const int i = j - h * half;
            float c, s;
            if (cached) {
                c = cosShared[i];
                s = sinShared[i];
            } else {
                double sd, cd;
                sincos(p * static_cast<double>(invFreq[i]), &sd, &cd);
                c = static_cast<float>(cd);
                s = static_cast<float>(sd);
            }
            float* base = row + static_cast<size_t>(h) * headDim;
            const float x0 = base[i];
            const float x1 = base[i + half];
            base[i] = x0 * c - x1 * s;
            base[i + half] = x1 * c + x0 * s;
        }
        // The next token overwrites the angles.
        __syncthreads();
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Paged KV cache and attention
// ---------------------------------------------------------------------------------------------------------------

// Copies row t of k and of v (rowWidth = kvHeads*headDim floats each) to row cacheRows[t] of the caches (layout
// [numBlocks*blockSize rows][rowWidth]; the host computes cacheRows[t] = blockTable[pos/blockSize]*blockSize +
// pos%blockSize). A negative cacheRows[t] skips the token (padding).
// Launch: grid=(tokens), block=256.
extern "C" __global__ void kv_write(const float* k, const float* v, float* keyCache, float* valueCache,
                                    const int* cacheRows, int tokens, int rowWidth) {
    for (int t = blockIdx.x; t < tokens; t += gridDim.x) {
        const int row = cacheRows[t];
        if (row < 0) {
            continue;
        }
        const size_t src = static_cast<size_t>(t) * rowWidth;
        const size_t dst = static_cast<size_t>(row) * rowWidth;
        for (int i = threadIdx.x; i < rowWidth; i += blockDim.x) {
            keyCache[dst + i] = k[src + i];
            valueCache[dst + i] = v[src + i];
        }
    }
}

#define PA_WARPS 4
#define PA_THREADS (PA_WARPS * 32)
#define PA_MAX_HEAD_DIM 256
#define PA_PER_LANE (PA_MAX_HEAD_DIM / 32)
#define PA_UNROLL 4

// Causal attention over the paged KV cache for a flat batch of tokens from different sequences. Token t is at
// positions[t] and attends to its sequence's positions 0..positions[t]; position p of that sequence lives in cache
// row blockTables[tableStart[t] + p/blockSize]*blockSize + p%blockSize. Query head h reads KV head
// h / (heads/kvHeads) (grouped-query attention; heads must be a multiple of kvHeads). q and out are
// tokens x heads x headDim; the caches are [rows][kvHeads*headDim]. out = softmax(q.k * scale) . v.
//
// Layout: one block of 4 warps per (head, token). Each warp walks positions warp, warp+4, ...; lane l holds
// elements l, l+32, l+64, ... of q and of its output accumulator, so each K or V row is read by one warp in
// coalesced 128-byte pieces, and the dot product is a register FMA per element plus a 5-step shuffle reduction.
// Each warp keeps an online softmax (running max m, running sum l, accumulator rescaled when m grows), so the
// cache is read once and no score buffer is needed whatever the context length; the 4 warps' (m, l, acc) are then
// merged through shared memory. headDim up to 256, any value (lanes past headDim hold zeros); a larger headDim
// writes NaN, which the host must rule out beforehand.
// Launch: grid=(heads, tokens), block=128. grid.y cannot exceed 65535: for more tokens launch fewer, blocks stride.
extern "C" __global__ void __launch_bounds__(PA_THREADS)
paged_attention(const float* q, float* out, const float* keyCache, const float* valueCache, const int* blockTables,
                const int* tableStart, const int* positions, int tokens, int heads, int kvHeads, int headDim,
                int blockSize, float scale) {
    __shared__ float warpMax[PA_WARPS];
    __shared__ float warpSum[PA_WARPS];
    __shared__ float warpAcc[PA_WARPS][PA_MAX_HEAD_DIM];

    const int h = blockIdx.x;
    if (h >= heads) {
        return;  // the whole block: no barrier is skipped by part of it
    }
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int kvHead = h / (heads / kvHeads);
    const size_t rowWidth = static_cast<size_t>(kvHeads) * headDim;
    const size_t kvOffset = static_cast<size_t>(kvHead) * headDim;

    for (int t = blockIdx.y; t < tokens; t += gridDim.y) {
        const size_t qBase = (static_cast<size_t>(t) * heads + h) * headDim;
        if (headDim > PA_MAX_HEAD_DIM) {
            for (int i = threadIdx.x; i < headDim; i += blockDim.x) {
                out[qBase + i] = CUDART_NAN_F;
            }
            continue;
        }

        float qv[PA_PER_LANE];
        float acc[PA_PER_LANE];
#pragma unroll
        for (int j = 0; j < PA_PER_LANE; j++) {
            const int i = lane + 32 * j;
            qv[j] = i < headDim ? q[qBase + i] : 0.0f;
            acc[j] = 0.0f;
        }

        // m and l are the same in every lane of a warp: they only depend on the shuffle-reduced scores.
        float m = -CUDART_INF_F;
        float l = 0.0f;
        const int last = positions[t];
        const int* table = blockTables + tableStart[t];
        // PA_UNROLL positions per step (p, p+4, p+8, p+12 for warp 0): their table, K and V loads are independent,
        // so they are in flight together instead of one position's latency after another's.
        for (int p0 = warp; p0 <= last; p0 += PA_WARPS * PA_UNROLL) {
            float s[PA_UNROLL];
            float vv[PA_UNROLL][PA_PER_LANE];
#pragma unroll
            for (int u = 0; u < PA_UNROLL; u++) {
                const int p = p0 + u * PA_WARPS;
                float dot = 0.0f;
#pragma unroll
                for (int j = 0; j < PA_PER_LANE; j++) {
                    vv[u][j] = 0.0f;
                }
                if (p <= last) {  // the same in every lane of the warp
                    const size_t row = static_cast<size_t>(table[p / blockSize]) * blockSize + p % blockSize;
                    const float* k = keyCache + row * rowWidth + kvOffset;
                    const float* v = valueCache + row * rowWidth + kvOffset;
#pragma unroll
                    for (int j = 0; j < PA_PER_LANE; j++) {
                        const int i = lane + 32 * j;
                        if (i < headDim) {
                            dot += qv[j] * k[i];
                            vv[u][j] = v[i];
                        }
                    }
                }
                s[u] = dot;
            }
            float mNew = m;
#pragma unroll
            for (int u = 0; u < PA_UNROLL; u++) {
                s[u] = p0 + u * PA_WARPS <= last ? warp_sum(s[u]) * scale : -CUDART_INF_F;
                mNew = fmaxf(mNew, s[u]);
            }
            // Subtract the running max so that exp never overflows. Positions past the end (and -inf scores, which
            // only overflowed products give) have score -inf and weight 0: exp(-inf - -inf) would be NaN.
            float rescale = 1.0f;
            float w[PA_UNROLL];
#pragma unroll
            for (int u = 0; u < PA_UNROLL; u++) {
                w[u] = 0.0f;
            }
            if (mNew != -CUDART_INF_F) {
                rescale = expf(m - mNew);
#pragma unroll
                for (int u = 0; u < PA_UNROLL; u++) {
                    w[u] = expf(s[u] - mNew);
                }
            }
            float wSum = 0.0f;
#pragma unroll
            for (int u = 0; u < PA_UNROLL; u++) {
                wSum += w[u];
            }
            l = l * rescale + wSum;
#pragma unroll
            for (int j = 0; j < PA_PER_LANE; j++) {
                float a = acc[j] * rescale;
#pragma unroll
                for (int u = 0; u < PA_UNROLL; u++) {
                    a += w[u] * vv[u][j];
                }
                acc[j] = a;
            }
            m = mNew;
        }

        // Merge the warps: rescale each to the block-wide max, then add (in warp order, so results are
        // reproducible).
        if (lane == 0) {
            warpMax[warp] = m;
            warpSum[warp] = l;
        }
        __syncthreads();
        float mAll = warpMax[0];
#pragma unroll
        for (int w = 1; w < PA_WARPS; w++) {
            mAll = fmaxf(mAll, warpMax[w]);
        }
        // A warp that saw no position (a context shorter than 4) has m = -inf, l = 0 and contributes nothing.
        const float own = m == -CUDART_INF_F ? 0.0f : expf(m - mAll);
#pragma unroll
        for (int j = 0; j < PA_PER_LANE; j++) {
            const int i = lane + 32 * j;
            if (i < headDim) {
                warpAcc[warp][i] = acc[j] * own;
            }
        }
        float lAll = 0.0f;
#pragma unroll
        for (int w = 0; w < PA_WARPS; w++) {
            lAll += warpMax[w] == -CUDART_INF_F ? 0.0f : warpSum[w] * expf(warpMax[w] - mAll);
        }
        __syncthreads();
        // lAll is 0 only for a token with a negative position (no context): write zeros, not 0/0.
        const float invL = lAll > 0.0f ? 1.0f / lAll : 0.0f;
        for (int i = threadIdx.x; i < headDim; i += blockDim.x) {
            float sum = 0.0f;
#pragma unroll
            for (int w = 0; w < PA_WARPS; w++) {
                sum += warpAcc[w][i];
            }
            out[qBase + i] = sum * invL;
        }
        // No barrier before the next token: its writes of warpMax and warpSum come after this token's second
        // barrier, which every reader of them has passed, and its writes of warpAcc after its own first one.
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Rows and sampling
// ---------------------------------------------------------------------------------------------------------------

// out[r] = x[rows[r]] for r < n, rows of width d (e.g. the last token of each sequence before the LM head); a
// negative rows[r] gives a row of zeros.
// Launch: grid=(n), block=256.
extern "C" __global__ void gather_rows(const float* x, const int* rows, int d, float* out, int n) {
    for (int r = blockIdx.x; r < n; r += gridDim.x) {
        const int row = rows[r];
        const size_t dst = static_cast<size_t>(r) * d;
        if (row < 0) {
            // A padding slot: zeros rather than a read before the buffer.
            for (int i = threadIdx.x; i < d; i += blockDim.x) {
                out[dst + i] = 0.0f;
            }
            continue;
        }
        const size_t src = static_cast<size_t>(row) * d;
        for (int i = threadIdx.x; i < d; i += blockDim.x) {
            out[dst + i] = x[src + i];
        }
    }
}

#define NO_INDEX 0x7fffffff

// Whether (v, i) beats (bestV, bestI): larger value, the lower index on a tie; a NaN never beats anything and
// anything beats a NaN (or the empty candidate, which is (NaN, NO_INDEX)).
__device__ __forceinline__ bool beats(float v, int i, float bestV, int bestI) {
    if (isnan(v)) {
        return false;
    }
    if (isnan(bestV)) {
        return true;
    }
    return v > bestV || (v == bestV && i < bestI);
}

// Per row of logits (rows x vocab), the index of the largest value into ids and that value into maxima: greedy
// decoding reads these rows x 2 numbers instead of the logits. As the CPU's CpuKernels.argmax: the lowest index wins
// a tie, a NaN is never chosen, and a row with nothing above -inf (or no columns) gives index 0 and -inf.
// Launch: grid=(rows) or fewer, block=1024.
extern "C" __global__ void argmax_rows(const float* logits, int vocab, int rows, int* ids, float* maxima) {
    __shared__ float sharedV[32];
    __shared__ int sharedI[32];
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int warps = (blockDim.x + 31) >> 5;
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* x = logits + static_cast<size_t>(r) * vocab;
        float bestV = CUDART_NAN_F;
        int bestI = NO_INDEX;
        // Ascending within a thread, so a later equal value never replaces the earlier one.
        for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
            const float v = x[i];
            if (beats(v, i, bestV, bestI)) {
                bestV = v;
                bestI = i;
            }
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const float v = __shfl_down_sync(FULL_MASK, bestV, o);
            const int i = __shfl_down_sync(FULL_MASK, bestI, o);
            if (beats(v, i, bestV, bestI)) {
                bestV = v;
                bestI = i;
            }
        }
        if (lane == 0) {
            sharedV[warp] = bestV;
            sharedI[warp] = bestI;
        }
        __syncthreads();
        if (warp == 0) {
            bestV = lane < warps ? sharedV[lane] : CUDART_NAN_F;
            bestI = lane < warps ? sharedI[lane] : NO_INDEX;
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) {
                const float v = __shfl_down_sync(FULL_MASK, bestV, o);
                const int i = __shfl_down_sync(FULL_MASK, bestI, o);
                if (beats(v, i, bestV, bestI)) {
                    bestV = v;
                    bestI = i;
                }
            }
            if (lane == 0) {
                const bool none = bestI == NO_INDEX || !(bestV > -CUDART_INF_F);
                ids[r] = none ? 0 : bestI;
                maxima[r] = none ? -CUDART_INF_F : bestV;
            }
        }
        // The next row reuses the shared arrays.
        __syncthreads();
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Precision conversions
// ---------------------------------------------------------------------------------------------------------------

// float32 -> bfloat16 bit patterns, rounding to nearest even (cublasGemmEx inputs; bf16 weights on upload).
// Launch: grid=(ceil(n/256)) or fewer, block=256.
extern "C" __global__ void f32_to_bf16(const float* in, unsigned short* out, long n) {
    GRID_STRIDE(i, n) {
        out[i] = __bfloat16_as_ushort(__float2bfloat16_rn(in[i]));
    }
}

// float32 -> float16 bit patterns, rounding to nearest even.
// Launch: grid=(ceil(n/256)) or fewer, block=256.
extern "C" __global__ void f32_to_f16(const float* in, unsigned short* out, long n) {
    GRID_STRIDE(i, n) {
        out[i] = __half_as_ushort(__float2half_rn(in[i]));
    }
}

// bfloat16 bit patterns -> float32 (exact), e.g. norms and biases of a bf16 checkpoint.
// Launch: grid=(ceil(n/256)) or fewer, block=256.
extern "C" __global__ void bf16_to_f32(const unsigned short* in, float* out, long n) {
    GRID_STRIDE(i, n) {
        out[i] = bf16_bits_to_float(in[i]);
    }
}

// float16 bit patterns -> float32 (exact).
// Launch: grid=(ceil(n/256)) or fewer, block=256.
extern "C" __global__ void f16_to_f32(const unsigned short* in, float* out, long n) {
    GRID_STRIDE(i, n) {
        out[i] = f16_bits_to_float(in[i]);
    }
}
