// convnet's own CUDA kernels, compiled at run time with NVRTC (device/cuda/nvrtc.rs).
// Each mirrors a CPU function of the library, which is its reference in the tests:
// activations (blocks/activation.rs), dropout (blocks/dropout.rs, with a counter-based
// generator of its own), the solvers (train/solver.rs), the softmax log-loss and the
// class-error metrics (blocks/loss.rs), and a deterministic sum.
// Sizes are 64-bit: one tensor may exceed 2^31 elements on a large GPU.

typedef long long i64;
typedef unsigned long long u64;

#define GRID_STRIDE(i, n) \
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (i64)blockDim.x * gridDim.x)

// ---- activations: backward takes x, as on the CPU -------------------------------

extern "C" __global__ void relu_forward(const float* x, float* y, float leak, i64 n) {
    GRID_STRIDE(i, n) {
        float v = x[i];
        y[i] = v > 0.0f ? v : leak * v;
    }
}

// The slope at 0 is taken from the left (leak), as on the CPU and in PyTorch.
extern "C" __global__ void relu_backward(const float* x, const float* dy, float* dx,
                                         float leak, i64 n) {
    GRID_STRIDE(i, n) {
        dx[i] = x[i] > 0.0f ? dy[i] : leak * dy[i];
    }
}

// exp is only taken of non-positive values, so it cannot overflow.
__device__ __forceinline__ float sigmoidf(float v) {
    if (v >= 0.0f) {
        return 1.0f / (1.0f + expf(-v));
    }
    float e = expf(v);
    return e / (1.0f + e);
}

extern "C" __global__ void sigmoid_forward(const float* x, float* y, i64 n) {
    GRID_STRIDE(i, n) { y[i] = sigmoidf(x[i]); }
}

extern "C" __global__ void sigmoid_backward(const float* x, const float* dy, float* dx,
                                            i64 n) {
    GRID_STRIDE(i, n) {
        float s = sigmoidf(x[i]);
        dx[i] = dy[i] * s * (1.0f - s);
    }
}

extern "C" __global__ void tanh_forward(const float* x, float* y, i64 n) {
    GRID_STRIDE(i, n) { y[i] = tanhf(x[i]); }
}

extern "C" __global__ void tanh_backward(const float* x, const float* dy, float* dx,
                                         i64 n) {
    GRID_STRIDE(i, n) {
        float t = tanhf(x[i]);
        dx[i] = dy[i] * (1.0f - t * t);
    }
}

// ---- dropout -----------------------------------------------------------------------

// SplitMix64 of (seed, index): each element's draw depends on its index alone, so the
// mask is the same whatever the launch shape. The top 24 bits give a float in [0, 1).
// cuda::dropout_uniform is the same function on the host.
__device__ __forceinline__ float uniform_at(u64 seed, u64 i) {
    u64 z = seed + (i + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z = z ^ (z >> 31);
    return (float)(z >> 40) * (1.0f / 16777216.0f);
}

// mask = 0 where the draw is below rate, else 1 / (1 - rate): inverted dropout.
extern "C" __global__ void dropout_mask(float* mask, u64 seed, float rate, float keep,
                                        i64 n) {
    GRID_STRIDE(i, n) { mask[i] = uniform_at(seed, (u64)i) < rate ? 0.0f : keep; }
}

// y = x * mask; also the backward (dx = dy * mask).
extern "C" __global__ void times_mask(const float* x, const float* mask, float* y, i64 n) {
    GRID_STRIDE(i, n) { y[i] = x[i] * mask[i]; }
}

// ---- solvers: gradients arrive summed over the batch; scale = 1 / batch ------------

// MatConvNet's rule: m = momentum m - rate (g scale + decay w); w += m.
extern "C" __global__ void sgd_update(float* w, const float* g, float* m, float rate,
                                      float scale, float decay, float momentum, i64 n) {
    GRID_STRIDE(i, n) {
        float mi = momentum * m[i] - rate * (g[i] * scale + decay * w[i]);
        m[i] = mi;
        w[i] += mi;
    }
}

// c1, c2: the bias corrections 1 - beta^t, computed on the host as on the CPU.
extern "C" __global__ void adam_update(float* w, const float* g, float* m, float* v,
                                       float rate, float scale, float decay, float beta1,
                                       float beta2, float eps, float c1, float c2, i64 n) {
    GRID_STRIDE(i, n) {
        float gi = g[i] * scale + decay * w[i];
        float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        w[i] -= rate * (mi / c1) / (sqrtf(vi / c2) + eps);
    }
}

// ---- losses over channels at each location of (N, C, H, W) scores ------------------

// The class a label holds, or -1 where it is no class index 0..c-1. A bad label is
// reported through *bad as 1 + the smallest bad location (atomicMin over locations,
// initialised by the host to a value above all of them), so the host names it.
__device__ __forceinline__ int class_at(const float* labels, i64 site, int c,
                                        u64* bad) {
    float v = labels[site];
    if (v >= 0.0f && v < (float)c && floorf(v) == v) {
        return (int)v;
    }
    atomicMin(bad, (u64)site + 1ULL);
    return -1;
}

// One thread per location (image n, spatial s): per-location loss into out[site], in
// double so the host-side sum matches the CPU's f64 accumulation. weights may be null.
// kind: 0 = softmax log-loss, 1 = class error, 2 = top-k error.
extern "C" __global__ void class_loss_forward(const float* x, const float* labels,
                                              const float* weights, double* out, u64* bad,
                                              int kind, int topk, i64 n, int c, i64 hw) {
    GRID_STRIDE(site, n * hw) {
        float w = weights ? weights[site] : 1.0f;
        if (w == 0.0f) {
            out[site] = 0.0;
            continue;
        }
        int l = class_at(labels, site, c, bad);
        if (l < 0) {
            out[site] = 0.0;
            continue;
        }
        const float* col = x + (site / hw) * (i64)c * hw + site % hw;
        float t = col[(i64)l * hw];
        if (kind == 0) {
            float mx = __int_as_float(0xff800000);  // -inf, with no header needed
            for (int k = 0; k < c; ++k) mx = fmaxf(mx, col[(i64)k * hw]);
            double sum = 0.0;
            for (int k = 0; k < c; ++k) sum += exp((double)col[(i64)k * hw] - (double)mx);
            out[site] = (double)w * ((double)mx + log(sum) - (double)t);
        } else {
            // Rank of the label: classes with higher scores, and equal scores earlier.
            int rank = 0;
            for (int k = 0; k < c; ++k) {
                float v = col[(i64)k * hw];
                rank += (v > t || (v == t && k < l)) ? 1 : 0;
            }
            int limit = kind == 1 ? 1 : topk;
            out[site] = rank >= limit ? (double)w : 0.0;
        }
    }
}

// dx = dzdy w (softmax(x) - onehot(label)) at each location; 0 where w is 0.
extern "C" __global__ void softmax_log_loss_backward(const float* x, const float* labels,
                                                     const float* weights, float* dx,
                                                     u64* bad, float dzdy, i64 n, int c,
                                                     i64 hw) {
    GRID_STRIDE(site, n * hw) {
        const i64 base = (site / hw) * (i64)c * hw + site % hw;
        float w = weights ? weights[site] : 1.0f;
        int l = w == 0.0f ? -1 : class_at(labels, site, c, bad);
        if (l < 0) {
            for (int k = 0; k < c; ++k) dx[base + (i64)k * hw] = 0.0f;
            continue;
        }
        const float* col = x + base;
        float mx = __int_as_float(0xff800000);  // -inf, with no header needed
        for (int k = 0; k < c; ++k) mx = fmaxf(mx, col[(i64)k * hw]);
        double sum = 0.0;
        for (int k = 0; k < c; ++k) sum += exp((double)col[(i64)k * hw] - (double)mx);
        double scale = (double)dzdy * (double)w;
        for (int k = 0; k < c; ++k) {
            double p = exp((double)col[(i64)k * hw] - (double)mx) / sum;
            dx[base + (i64)k * hw] = (float)(scale * (p - (k == l ? 1.0 : 0.0)));
        }
    }
}

// ---- a deterministic sum -------------------------------------------------------------

// One block of SUM_THREADS threads: each adds a fixed stride of the input, then a tree
// in shared memory. The same input gives the same bits on every run (no atomics).
#define SUM_THREADS 1024
extern "C" __global__ void sum_f64(const double* in, double* out, i64 n) {
    __shared__ double part[SUM_THREADS];
    double acc = 0.0;
    for (i64 i = threadIdx.x; i < n; i += SUM_THREADS) acc += in[i];
    part[threadIdx.x] = acc;
    __syncthreads();
    for (int half = SUM_THREADS / 2; half > 0; half >>= 1) {
        if (threadIdx.x < half) part[threadIdx.x] += part[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) *out = part[0];
}
