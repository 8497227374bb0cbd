// Runs the kernels of kernels/src/main/cuda/flover.cu on the CPU and compares them with plain references written
// after the Java CPU kernels, for machines without a GPU. Run it with host-check.sh beside this file.
//
// flover.cu is compiled as ordinary C++ with the CUDA headers' host code: every CUDA thread of a block is a
// std::thread, __syncthreads is a barrier of the block's threads, a warp shuffle is an exchange between the 32
// threads of a warp through a barrier, and __shared__ variables are statics (blocks run one after another). This
// checks index arithmetic, bounds, reductions and the placement of barriers (with -fsanitize=thread, races on
// shared memory too); it does not model the GPU's memory model, scheduling or its math library's last-bit
// rounding, so tolerances are those of the float32 CPU kernels.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math_constants.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

// --- CUDA on threads ----------------------------------------------------------------------------------------------

#undef __global__
#undef __device__
#undef __shared__
#undef __forceinline__
#undef __launch_bounds__
#define __global__
#define __device__
#define __shared__ static
#define __forceinline__ inline
#define __launch_bounds__(...)

struct Dim {
    unsigned x = 1, y = 1, z = 1;
};
thread_local Dim emuThreadIdx, emuBlockIdx;
Dim emuBlockDim, emuGridDim;
#define threadIdx emuThreadIdx
#define blockIdx emuBlockIdx
#define blockDim emuBlockDim
#define gridDim emuGridDim

// A barrier that synchronises its own participants and nothing else: std::barrier shares waiter pools (mutexes)
// between unrelated barriers, which orders threads that the GPU would not and hides races from the sanitizer.
class Barrier {
  public:
    explicit Barrier(int participants) : expected_(participants) {}
    void arrive_and_wait() {
        unsigned long phase;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            phase = phase_.load(std::memory_order_relaxed);
            if (++arrived_ == expected_) {
                next();
                return;
            }
        }
        // Yielding rather than sleeping on a condition variable: phases are short, and waking hundreds of
        // sleepers costs far more than letting them spin.
        while (phase_.load(std::memory_order_acquire) == phase) {
            std::this_thread::yield();
        }
    }
    void arrive_and_drop() {
        std::lock_guard<std::mutex> lock(mutex_);
        if (--expected_ > 0 && arrived_ == expected_) {
            next();
        }
    }

  private:
    void next() {
        arrived_ = 0;
        phase_.fetch_add(1, std::memory_order_release);
    }
    std::mutex mutex_;
    int expected_;
    int arrived_ = 0;
    std::atomic<unsigned long> phase_{0};
};

struct Warp {
    Barrier sync{32};
    uint64_t slots[32];
};
struct Block {
    explicit Block(unsigned threads) : sync(threads) {
        for (unsigned w = 0; w < threads / 32; w++) {
            warps.push_back(std::make_unique<Warp>());
        }
    }
    Barrier sync;
    std::vector<std::unique_ptr<Warp>> warps;
};
thread_local Block* emuBlock;

inline void __syncthreads() { emuBlock->sync.arrive_and_wait(); }

template <typename T>
T emuShuffle(T v, int src, bool inRange) {
    Warp& w = *emuBlock->warps[threadIdx.x >> 5];
    const int lane = threadIdx.x & 31;
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    w.slots[lane] = bits;
    w.sync.arrive_and_wait();
    T r = v;
    if (inRange) {
        std::memcpy(&r, &w.slots[src], sizeof(T));
    }
    w.sync.arrive_and_wait();
    return r;
}
template <typename T>
T __shfl_xor_sync(unsigned, T v, int laneMask) {
    return emuShuffle(v, (threadIdx.x & 31) ^ laneMask, true);
}
template <typename T>
T __shfl_down_sync(unsigned, T v, unsigned delta) {
    const int src = (threadIdx.x & 31) + delta;
    return emuShuffle(v, src, src < 32);
}
inline float __uint_as_float(unsigned u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline float __int_as_float(int i) {
    float f;
    std::memcpy(&f, &i, 4);
    return f;
}
using std::isnan;

// Runs body for every thread of every block of grid x block: one OS thread per CUDA thread of a block, which run
// the blocks one after another (so __shared__ statics serve each block in turn).
void launch(Dim grid, Dim block, const std::function<void()>& body) {
    if (block.x % 32 != 0) {
        std::fprintf(stderr, "launch: block %u is not whole warps\n", block.x);
        std::abort();
    }
    emuGridDim = grid;
    emuBlockDim = block;
    const unsigned blockCount = grid.x * grid.y;
    std::vector<std::unique_ptr<Block>> blocks;
    for (unsigned b = 0; b < blockCount; b++) {
        blocks.push_back(std::make_unique<Block>(block.x));
    }
    Barrier nextBlock(block.x);
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < block.x; t++) {
        threads.emplace_back([&, t] {
            emuThreadIdx = {t, 0, 0};
            for (unsigned b = 0; b < blockCount; b++) {
                emuBlockIdx = {b % grid.x, b / grid.x, 0};
                emuBlock = blocks[b].get();
                body();
                // An exited thread no longer holds up barriers, as on the GPU.
                emuBlock->warps[t >> 5]->sync.arrive_and_drop();
                emuBlock->sync.arrive_and_drop();
                nextBlock.arrive_and_wait();
            }
        });
    }
    for (auto& th : threads) {
        th.join();
    }
}

#include "../../main/cuda/flover.cu"

#undef threadIdx
#undef blockIdx
#undef blockDim
#undef gridDim

// --- Checks -------------------------------------------------------------------------------------------------------

static int failures = 0;
static int passes = 0;

static void check(bool ok, const std::string& what) {
    if (ok) {
        passes++;
    } else {
        failures++;
        std::printf("FAIL %s\n", what.c_str());
    }
}

// Largest |a-b| / max(1, |b|); NaN where exactly one side is NaN.
static double maxError(const std::vector<float>& a, const std::vector<float>& b) {
    double worst = 0;
    for (size_t i = 0; i < a.size(); i++) {
        if (std::isnan(a[i]) || std::isnan(b[i])) {
            if (std::isnan(a[i]) != std::isnan(b[i])) {
                return NAN;
            }
            continue;
        }
        worst = std::max(worst, std::fabs((double)a[i] - b[i]) / std::max(1.0, std::fabs((double)b[i])));
    }
    return worst;
}

static void checkClose(const std::vector<float>& got, const std::vector<float>& want, double tol,
                       const std::string& what) {
    const double e = got.size() == want.size() ? maxError(got, want) : NAN;
    check(e <= tol, what + " (max error " + std::to_string(e) + ")");
}

static std::mt19937 rng(42);
static std::vector<float> randoms(size_t n, float scale = 1.0f) {
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v(n);
    for (auto& x : v) {
        x = d(rng);
    }
    return v;
}

static unsigned ceilDiv(long long a, int b) { return (unsigned)((a + b - 1) / b); }

static uint16_t bf16Bits(float f) {  // round to nearest even, NaN kept quiet
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if (std::isnan(f)) {
        return 0x7fc0 | (u >> 31 << 15);
    }
    return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

static void testEmbedding() {
    const int rows = 7, d = 300, firstId = 5, tokens = 6;
    std::vector<float> table = randoms((size_t)rows * d);
    std::vector<int> ids = {5, 11, 4, 12, 8, -2147483647};
    std::vector<float> want((size_t)tokens * d, 0.0f);
    for (int t = 0; t < tokens; t++) {
        long long r = (long long)ids[t] - firstId;
        if (r >= 0 && r < rows) {
            std::copy(&table[r * d], &table[r * d] + d, &want[(size_t)t * d]);
        }
    }
    std::vector<float> out((size_t)tokens * d, -1.0f);
    launch({tokens}, {256}, [&] { embedding_f32(table.data(), rows, d, firstId, ids.data(), tokens, out.data()); });
    checkClose(out, want, 0, "embedding_f32");

    std::vector<uint16_t> bf(table.size()), hf(table.size());
    std::vector<float> wantBf(want.size(), 0.0f), wantHf(want.size(), 0.0f);
    for (size_t i = 0; i < table.size(); i++) {
        bf[i] = bf16Bits(table[i]);
        hf[i] = __half_as_ushort(__float2half_rn(table[i]));
    }
    for (int t = 0; t < tokens; t++) {
        long long r = (long long)ids[t] - firstId;
        if (r >= 0 && r < rows) {
            for (int i = 0; i < d; i++) {
                uint32_t u = (uint32_t)bf[r * d + i] << 16;
                std::memcpy(&wantBf[(size_t)t * d + i], &u, 4);
                wantHf[(size_t)t * d + i] = __half2float(__ushort_as_half(hf[r * d + i]));
            }
        }
    }
    // A smaller grid than tokens: blocks stride.
    std::fill(out.begin(), out.end(), -1.0f);
    launch({4}, {256}, [&] { embedding_bf16(bf.data(), rows, d, firstId, ids.data(), tokens, out.data()); });
    checkClose(out, wantBf, 0, "embedding_bf16");
    std::fill(out.begin(), out.end(), -1.0f);
    launch({tokens}, {256}, [&] { embedding_f16(hf.data(), rows, d, firstId, ids.data(), tokens, out.data()); });
    checkClose(out, wantHf, 0, "embedding_f16");
}

static void testNorms() {
    for (int d : {1, 64, 255, 1000, 4096}) {
        const int rows = 3;
        const float eps = 1e-5f;
        std::vector<float> x = randoms((size_t)rows * d, 3.0f), w = randoms(d), b = randoms(d);
        std::vector<float> rms(x.size()), ln(x.size());
        for (int r = 0; r < rows; r++) {
            const float* xr = &x[(size_t)r * d];
            double ss = 0, sum = 0;
            for (int i = 0; i < d; i++) {
                ss += (double)xr[i] * xr[i];
                sum += xr[i];
            }
            float inv = (float)(1.0 / std::sqrt(ss / d + eps));
            double mean = sum / d, var = 0;
            for (int i = 0; i < d; i++) {
                rms[(size_t)r * d + i] = xr[i] * inv * w[i];
                var += (xr[i] - mean) * (xr[i] - mean);
            }
            float linv = (float)(1.0 / std::sqrt(var / d + eps));
            for (int i = 0; i < d; i++) {
                ln[(size_t)r * d + i] = (float)((xr[i] - mean) * linv * w[i] + b[i]);
            }
        }
        std::vector<float> out(x.size()), inPlace = x;
        launch({rows}, {256}, [&] { rms_norm(x.data(), out.data(), w.data(), d, eps); });
        checkClose(out, rms, 1e-5, "rms_norm d=" + std::to_string(d));
        launch({rows}, {256}, [&] { rms_norm(inPlace.data(), inPlace.data(), w.data(), d, eps); });
        checkClose(inPlace, rms, 1e-5, "rms_norm in place d=" + std::to_string(d));
        launch({rows}, {256}, [&] { layer_norm(x.data(), out.data(), w.data(), b.data(), d, eps); });
        checkClose(out, ln, 1e-4, "layer_norm d=" + std::to_string(d));
        inPlace = x;
        launch({rows}, {256}, [&] { layer_norm(inPlace.data(), inPlace.data(), w.data(), b.data(), d, eps); });
        checkClose(inPlace, ln, 1e-4, "layer_norm in place d=" + std::to_string(d));
    }
    // A large common offset: the two-pass variance keeps it exact where E[x^2] - mean^2 would not.
    const int d = 512;
    std::vector<float> x = randoms(d), w(d, 1.0f), b(d, 0.0f), out(d);
    for (auto& v : x) {
        v += 1000.0f;
    }
    double mean = 0, var = 0;
    for (float v : x) mean += v;
    mean /= d;
    for (float v : x) var += (v - mean) * (v - mean);
    std::vector<float> want(d);
    for (int i = 0; i < d; i++) want[i] = (float)((x[i] - mean) / std::sqrt(var / d + 1e-5));
    launch({1}, {256}, [&] { layer_norm(x.data(), out.data(), w.data(), b.data(), d, 1e-5f); });
    checkClose(out, want, 1e-3, "layer_norm with an offset of 1000");
}

static void testElementwise() {
    const int n = 1000;
    std::vector<float> g = randoms(n, 4.0f), up = randoms(n), x = randoms(n, 4.0f);
    std::vector<float> wantSilu(n), wantGelu(n), wantAdd(n);
    const float c = (float)std::sqrt(2 / M_PI);
    for (int i = 0; i < n; i++) {
        wantSilu[i] = g[i] / (1 + std::exp(-g[i])) * up[i];
        wantGelu[i] = 0.5f * x[i] * (1 + std::tanh(c * (x[i] + 0.044715f * x[i] * x[i] * x[i])));
        wantAdd[i] = g[i] + x[i];
    }
    std::vector<float> a = g;
    launch({2}, {256}, [&] { silu_mul(a.data(), up.data(), n); });  // 2 blocks for 1000: grid-stride
    checkClose(a, wantSilu, 1e-6, "silu_mul");
    a = x;
    launch({ceilDiv(n, 256)}, {256}, [&] { gelu_new(a.data(), n); });
    checkClose(a, wantGelu, 1e-6, "gelu_new");
    a = g;
    launch({1}, {256}, [&] { add(a.data(), x.data(), n); });
    checkClose(a, wantAdd, 0, "add");

    const int rows = 5, d = 77;
    std::vector<float> m = randoms((size_t)rows * d), bias = randoms(d), wantBias(m.size());
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < d; i++) wantBias[(size_t)r * d + i] = m[(size_t)r * d + i] + bias[i];
    launch({ceilDiv((long long)rows * d, 256)}, {256}, [&] { add_bias(m.data(), bias.data(), rows, d); });
    checkClose(m, wantBias, 0, "add_bias");
}

static void testRope() {
    for (int headDim : {16, 64, 128}) {
        const int tokens = 5, heads = 3, half = headDim / 2;
        std::vector<int> positions = {0, 1, 17, 4095, 70000};
        std::vector<float> invFreq(half);
        for (int i = 0; i < half; i++) invFreq[i] = (float)(1.0 / std::pow(500000.0, 2.0 * i / headDim));
        std::vector<float> x = randoms((size_t)tokens * heads * headDim), want = x;
        for (int t = 0; t < tokens; t++) {
            for (int h = 0; h < heads; h++) {
                float* b = &want[((size_t)t * heads + h) * headDim];
                for (int i = 0; i < half; i++) {
                    double a = (double)positions[t] * invFreq[i];
                    float cs = (float)std::cos(a), sn = (float)std::sin(a);
                    float x0 = b[i], x1 = b[i + half];
                    b[i] = x0 * cs - x1 * sn;
                    b[i + half] = x1 * cs + x0 * sn;
                }
            }
        }
        for (unsigned grid : {(unsigned)tokens, 2u}) {  // one block per token, and blocks striding over tokens
            std::vector<float> y = x;
            launch({grid}, {128}, [&] { rope(y.data(), positions.data(), invFreq.data(), tokens, heads, headDim); });
            checkClose(y, want, 1e-6, "rope headDim=" + std::to_string(headDim) + " grid=" + std::to_string(grid));
        }
    }
}

// Paged attention: sequences of given lengths, every position of each in the batch (a prefill), each sequence's
// blocks scattered over the cache; K/V written with kv_write, attention checked against a two-pass softmax.
static void testAttention(int heads, int kvHeads, int headDim, int blockSize, std::vector<int> lengths,
                          float qScale, unsigned gridY) {
    const int rowWidth = kvHeads * headDim;
    int tokens = 0, blocksNeeded = 0;
    for (int len : lengths) {
        tokens += len;
        blocksNeeded += (len + blockSize - 1) / blockSize;
    }
    const int numBlocks = blocksNeeded + 3;
    std::vector<int> freeBlocks(numBlocks);
    for (int i = 0; i < numBlocks; i++) freeBlocks[i] = i;
    std::shuffle(freeBlocks.begin(), freeBlocks.end(), rng);
    std::vector<int> blockTables, tableStart, positions, cacheRows;
    int nextFree = 0;
    for (int len : lengths) {
        int start = (int)blockTables.size();
        for (int b = 0; b < (len + blockSize - 1) / blockSize; b++) blockTables.push_back(freeBlocks[nextFree++]);
        for (int p = 0; p < len; p++) {
            tableStart.push_back(start);
            positions.push_back(p);
            cacheRows.push_back(blockTables[start + p / blockSize] * blockSize + p % blockSize);
        }
    }
    std::vector<float> q = randoms((size_t)tokens * heads * headDim, qScale);
    std::vector<float> k = randoms((size_t)tokens * rowWidth), v = randoms((size_t)tokens * rowWidth);
    std::vector<float> keyCache((size_t)numBlocks * blockSize * rowWidth, NAN);
    std::vector<float> valueCache(keyCache.size(), NAN);  // NaN: reading an unwritten row shows
    launch({(unsigned)tokens}, {256}, [&] {
        kv_write(k.data(), v.data(), keyCache.data(), valueCache.data(), cacheRows.data(), tokens, rowWidth);
    });
    const float scale = (float)(1.0 / std::sqrt((double)headDim));

    std::vector<float> want((size_t)tokens * heads * headDim);
    for (int t = 0, first = 0, seq = 0; t < tokens; t++) {
        if (positions[t] == 0 && t > 0) first = t, seq++;
        for (int h = 0; h < heads; h++) {
            int kvh = h / (heads / kvHeads);
            const float* qr = &q[((size_t)t * heads + h) * headDim];
            int len = positions[t] + 1;
            std::vector<double> s(len);
            double mx = -INFINITY;
            for (int p = 0; p < len; p++) {
                const float* kr = &k[(size_t)(first + p) * rowWidth + kvh * headDim];
                double dot = 0;
                for (int i = 0; i < headDim; i++) dot += (double)qr[i] * kr[i];
                s[p] = dot * scale;
                mx = std::max(mx, s[p]);
            }
            double sum = 0;
            for (int p = 0; p < len; p++) sum += (s[p] = std::exp(s[p] - mx));
            for (int i = 0; i < headDim; i++) {
                double o = 0;
                for (int p = 0; p < len; p++) o += s[p] / sum * v[(size_t)(first + p) * rowWidth + kvh * headDim + i];
                want[((size_t)t * heads + h) * headDim + i] = (float)o;
            }
        }
    }
    std::vector<float> out(want.size(), -7.0f);
    launch({(unsigned)heads, gridY ? gridY : (unsigned)tokens}, {128}, [&] {
        paged_attention(q.data(), out.data(), keyCache.data(), valueCache.data(), blockTables.data(),
                        tableStart.data(), positions.data(), tokens, heads, kvHeads, headDim, blockSize, scale);
    });
    std::string what = "paged_attention heads=" + std::to_string(heads) + " kvHeads=" + std::to_string(kvHeads) +
                       " headDim=" + std::to_string(headDim) + " blockSize=" + std::to_string(blockSize) +
                       " qScale=" + std::to_string(qScale) + " gridY=" + std::to_string(gridY);
    checkClose(out, want, 2e-5, what);
}

static void testAttentionLimits() {
    // headDim above 256 is refused with NaN rather than computed wrongly.
    const int heads = 1, headDim = 288;
    std::vector<float> q(headDim, 1.0f), out(headDim, 0.0f), cache(headDim, 1.0f);
    std::vector<int> table = {0}, start = {0}, pos = {0};
    launch({1, 1}, {128}, [&] {
        paged_attention(q.data(), out.data(), cache.data(), cache.data(), table.data(), start.data(), pos.data(), 1,
                        heads, 1, headDim, 1, 1.0f);
    });
    bool allNan = true;
    for (float f : out) allNan &= std::isnan(f);
    check(allNan, "paged_attention headDim=288 writes NaN");
    // A negative position (no context) writes zeros.
    std::vector<float> q2(16, 1.0f), out2(16, 5.0f), c2(16, 1.0f);
    std::vector<int> neg = {-1};
    launch({1, 1}, {128}, [&] {
        paged_attention(q2.data(), out2.data(), c2.data(), c2.data(), table.data(), start.data(), neg.data(), 1, 1,
                        1, 16, 1, 1.0f);
    });
    bool allZero = true;
    for (float f : out2) allZero &= f == 0.0f;
    check(allZero, "paged_attention with a negative position writes zeros");
}

// CpuKernels.argmax: the first index of the largest value above -inf, else 0.
static int javaArgmax(const float* x, int n) {
    int best = 0;
    float bestValue = -INFINITY;
    for (int i = 0; i < n; i++)
        if (x[i] > bestValue) {
            bestValue = x[i];
            best = i;
        }
    return best;
}

// CpuBackend.argmaxRows' maximum: the chosen value, -inf where nothing is above it.
static float javaMaximum(const float* x, int n) {
    float v = n == 0 ? -INFINITY : x[javaArgmax(x, n)];
    return v > -INFINITY ? v : -INFINITY;
}

static void testArgmax() {
    std::vector<std::pair<std::string, std::vector<float>>> cases;
    cases.push_back({"random 50000", randoms(50000)});
    cases.push_back({"random 5", randoms(5)});
    cases.push_back({"all equal", std::vector<float>(3000, 2.5f)});
    std::vector<float> ties = randoms(4100);
    for (int i : {4099, 1030, 7, 2050}) ties[i] = 100.0f;
    cases.push_back({"ties across threads", ties});
    std::vector<float> nan0 = randoms(2000);
    nan0[0] = NAN;
    nan0[5] = 50.0f;
    cases.push_back({"NaN at 0", nan0});
    std::vector<float> nanLater = randoms(2000);
    nanLater[3] = NAN;
    nanLater[1500] = NAN;
    cases.push_back({"NaN later", nanLater});
    cases.push_back({"all -inf", std::vector<float>(1500, -INFINITY)});
    std::vector<float> zeros = {-0.0f, 0.0f, -0.0f, -1.0f};
    cases.push_back({"signed zeros", zeros});
    std::vector<float> allNan(100, NAN);
    cases.push_back({"all NaN", allNan});
    std::vector<float> infs = randoms(3000);
    infs[2999] = INFINITY;
    infs[100] = NAN;
    cases.push_back({"+inf last", infs});
    std::vector<float> nanThenMinusInf(40, -INFINITY);
    nanThenMinusInf[0] = NAN;
    cases.push_back({"NaN, then -inf", nanThenMinusInf});
    cases.push_back({"no columns", {}});
    for (auto& [name, x] : cases) {
        int n = (int)x.size();
        // Two rows: the row offset is exercised too.
        std::vector<float> two(x);
        two.insert(two.end(), x.rbegin(), x.rend());
        for (unsigned grid : {2u, 1u}) {  // one block per row, and one block striding over both
            std::vector<int> ids(2, -1);
            std::vector<float> maxima(2, NAN);
            launch({grid}, {1024}, [&] { argmax_rows(two.data(), n, 2, ids.data(), maxima.data()); });
            for (int r = 0; r < 2; r++) {
                const float* row = two.data() + (size_t)r * n;
                check(ids[r] == javaArgmax(row, n) && maxima[r] == javaMaximum(row, n),
                      "argmax_rows " + name + " grid=" + std::to_string(grid) + " row " + std::to_string(r) +
                          ": got " + std::to_string(ids[r]) + " (" + std::to_string(maxima[r]) + ") want " +
                          std::to_string(javaArgmax(row, n)) + " (" + std::to_string(javaMaximum(row, n)) + ")");
            }
        }
    }
}

static void testRowsAndConversions() {
    const int d = 33, n = 4;
    std::vector<float> x = randoms(10 * d), out((size_t)n * d, -1.0f), want((size_t)n * d, 0.0f);
    std::vector<int> rows = {9, 0, -1, 4};
    for (int r = 0; r < n; r++)
        if (rows[r] >= 0) std::copy(&x[(size_t)rows[r] * d], &x[(size_t)rows[r] * d] + d, &want[(size_t)r * d]);
    launch({n}, {256}, [&] { gather_rows(x.data(), rows.data(), d, out.data(), n); });
    checkClose(out, want, 0, "gather_rows");

    std::vector<float> f = randoms(3000, 100.0f);
    f.push_back(NAN);
    f.push_back(INFINITY);
    f.push_back(-0.0f);
    f.push_back(1.0f + 1.0f / 256);       // a bf16 tie: rounds to even (1.0)
    f.push_back(1.0f + 3.0f / 256);       // a bf16 tie: rounds to even (1.0 + 4/256)
    f.push_back(65520.0f);                // rounds to +inf in float16
    f.push_back(1e-8f);                   // float16 subnormal range
    const long len = (long)f.size();
    std::vector<uint16_t> bf(len), hf(len);
    launch({3}, {256}, [&] { f32_to_bf16(f.data(), bf.data(), len); });
    launch({3}, {256}, [&] { f32_to_f16(f.data(), hf.data(), len); });
    bool bfOk = true, hfOk = true;
    for (long i = 0; i < len; i++) {
        uint16_t want16 = bf16Bits(f[i]);
        bfOk &= std::isnan(f[i]) ? (bf[i] & 0x7fff) > 0x7f80 : bf[i] == want16;
        hfOk &= hf[i] == __half_as_ushort(__float2half_rn(f[i]));
    }
    check(bfOk, "f32_to_bf16 rounds to nearest even");
    check(hfOk, "f32_to_f16 matches __float2half_rn");
    check(hf[len - 2] == 0x7c00, "f32_to_f16 65520 -> inf");
    std::vector<float> back(len), backH(len);
    launch({2}, {256}, [&] { bf16_to_f32(bf.data(), back.data(), len); });
    launch({2}, {256}, [&] { f16_to_f32(hf.data(), backH.data(), len); });
    bool wideOk = true;
    for (long i = 0; i < len; i++) {
        uint32_t u = (uint32_t)bf[i] << 16;
        float w;
        std::memcpy(&w, &u, 4);
        wideOk &= (std::isnan(w) && std::isnan(back[i])) || w == back[i];
        wideOk &= (std::isnan(backH[i]) && std::isnan(f[i])) || backH[i] == __half2float(__ushort_as_half(hf[i]));
    }
    check(wideOk, "bf16_to_f32 and f16_to_f32 widen exactly");
}

int main(int argc, char** argv) {
    // An argument runs only the groups whose name contains it (embedding, norms, elementwise, rope, attention,
    // argmax, conversions).
    const std::string only = argc > 1 ? argv[1] : "";
    auto run = [&](const char* name, const std::function<void()>& group) {
        if (std::string(name).find(only) != std::string::npos) {
            group();
        }
    };
    run("embedding", testEmbedding);
    run("norms", testNorms);
    run("elementwise", testElementwise);
    run("rope", testRope);
    run("attention", [] {
        testAttention(4, 2, 16, 4, {1, 2, 3, 9}, 1.0f, 0);  // headDim below a warp, GQA, short contexts
        testAttention(4, 2, 16, 4, {1, 2, 3, 9}, 1.0f, 1);  // the same, one block row striding over all tokens
        testAttention(4, 4, 64, 16, {40, 5}, 1.0f, 0);      // multi-head, several blocks per sequence
        testAttention(2, 1, 80, 3, {21}, 1.0f, 5);          // headDim not a multiple of 32; grid.y strides
        testAttention(2, 2, 256, 8, {19}, 1.0f, 0);         // the largest headDim
        testAttention(2, 1, 64, 16, {70}, 1.0f, 0);         // several steps of 16 positions per block
        testAttention(8, 2, 32, 4, {12, 1}, 30.0f, 0);      // large scores: the softmax must stay stable
        testAttentionLimits();
    });
    run("argmax", testArgmax);
    run("conversions", testRowsAndConversions);
    std::printf("host-check: %d passed, %d failed\n", passes, failures);
    return failures == 0 && passes > 0 ? 0 : 1;
}
