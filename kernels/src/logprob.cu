// Fused token log-prob kernels, compiled at run time with NVRTC (no headers needed).
//
// One block per row, THREADS threads striding over the vocabulary, four elements per load where
// the row is aligned (16-byte loads for f32, 8-byte for bf16), one at a time otherwise. Forward: each thread keeps an
// online (max, sum of exp) pair over its elements; the pairs are merged by warp shuffles and then
// across warps through shared memory; the row's [log p(target), max, lse] are written. Backward:
// each element of the gradient is g * (onehot - exp((x - max) - lse)), written in one pass.
// Rows whose target is IGNORE are not read. A target >= V (other than IGNORE) yields NaN rather than
// reading out of bounds (the CPU path reports it as an error).
//
// bf16 is handled as raw 16-bit words so the source needs no cuda_bf16.h include path.

#define IGNORE 0xffffffffu
#define NEG_INF (__int_as_float(0xff800000))

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(unsigned short x) {
    return __uint_as_float(((unsigned int)x) << 16);
}
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(unsigned short* p, float v) {
    unsigned int u = __float_as_uint(v);
    if ((u & 0x7fffffffu) > 0x7f800000u) { *p = 0x7fc0; return; }  // NaN stays NaN
    u += 0x7fffu + ((u >> 16) & 1u);                                 // round to nearest even
    *p = (unsigned short)(u >> 16);
}

// Vector loads of four consecutive elements: element 4j..4j+3 of a row whose start is aligned to
// the vector size (checked per row; rows of a sliced tensor may not be).
__device__ __forceinline__ bool aligned4(const float* p) { return (((size_t)p) & 15) == 0; }
__device__ __forceinline__ bool aligned4(const unsigned short* p) { return (((size_t)p) & 7) == 0; }
__device__ __forceinline__ void load4(const float* p, unsigned int j, float& a, float& b, float& c,
                                      float& d) {
    const float4 q = reinterpret_cast<const float4*>(p)[j];
    a = q.x; b = q.y; c = q.z; d = q.w;
}
__device__ __forceinline__ void load4(const unsigned short* p, unsigned int j, float& a, float& b,
                                      float& c, float& d) {
    const uint2 q = reinterpret_cast<const uint2*>(p)[j];
    a = __uint_as_float(q.x << 16); b = __uint_as_float(q.x & 0xffff0000u);
    c = __uint_as_float(q.y << 16); d = __uint_as_float(q.y & 0xffff0000u);
}

__device__ __forceinline__ void store4(float* p, unsigned int j, float a, float b, float c,
                                       float d) {
    reinterpret_cast<float4*>(p)[j] = make_float4(a, b, c, d);
}
__device__ __forceinline__ void store4(unsigned short* p, unsigned int j, float a, float b,
                                       float c, float d) {
    unsigned short h[4];
    store(h, a); store(h + 1, b); store(h + 2, c); store(h + 3, d);
    reinterpret_cast<uint2*>(p)[j] = make_uint2(h[0] | ((unsigned int)h[1] << 16),
                                                h[2] | ((unsigned int)h[3] << 16));
}

// Merges (m2, s2) into (m, s): sums of exp(x - m) under a common max.
__device__ __forceinline__ void merge(float& m, float& s, float m2, float s2) {
    float mn = fmaxf(m, m2);
    if (mn == NEG_INF) return;  // both sides empty
    s = s * expf(m - mn) + s2 * expf(m2 - mn);
    m = mn;
}

__device__ __forceinline__ void warp_merge(float& m, float& s) {
    for (int off = 16; off > 0; off >>= 1) {
        float m2 = __shfl_xor_sync(0xffffffffu, m, off);
        float s2 = __shfl_xor_sync(0xffffffffu, s, off);
        merge(m, s, m2, s2);
    }
}

template <typename T>
__device__ void fwd_row(const T* logits, const unsigned int* targets, float* out, unsigned int v) {
    const size_t row = blockIdx.x;
    const unsigned int t = targets[row];
    float* o = out + 3 * row;
    if (t == IGNORE || t >= v) {  // uniform across the block: no thread reaches __syncthreads
        if (threadIdx.x == 0) {
            float z = t == IGNORE ? 0.0f : __int_as_float(0x7fc00000);
            o[0] = z; o[1] = z; o[2] = z;
        }
        return;
    }
    const T* x = logits + row * v;
    float m = NEG_INF, s = 0.0f;
    // Four elements per load where the row allows it (16-byte loads for f32, 8 for bf16): one
    // rescale of the running sum per four elements instead of per element, and four independent
    // exps in flight, so the loop is bound by memory rather than by the exp dependency chain.
    unsigned int start = 0;
    if (aligned4(x)) {
        const unsigned int v4 = v / 4;
        for (unsigned int j = threadIdx.x; j < v4; j += blockDim.x) {
            float a, b, c, d;
            load4(x, j, a, b, c, d);
            const float lm = fmaxf(fmaxf(a, b), fmaxf(c, d));
            if (lm > m) { s *= expf(m - lm); m = lm; }
            s += (expf(a - m) + expf(b - m)) + (expf(c - m) + expf(d - m));
        }
        start = 4 * v4;
    }
    for (unsigned int j = start + threadIdx.x; j < v; j += blockDim.x) {
        float xj = to_f(x[j]);
        if (xj > m) { s = s * expf(m - xj) + 1.0f; m = xj; }
        else { s += expf(xj - m); }
    }
    warp_merge(m, s);
    __shared__ float wm[32], ws[32];
    const unsigned int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) { wm[warp] = m; ws[warp] = s; }
    __syncthreads();
    if (warp == 0) {
        const unsigned int nw = (blockDim.x + 31) / 32;
        m = lane < nw ? wm[lane] : NEG_INF;
        s = lane < nw ? ws[lane] : 0.0f;
        warp_merge(m, s);
        if (lane == 0) {
            float lse = logf(s);
            o[0] = (to_f(x[t]) - m) - lse;
            o[1] = m;
            o[2] = lse;
        }
    }
}

// gs holds [g, max, lse] per row (statistics of the full row); the logits given may be a block of
// v columns starting at col_offset.
template <typename T>
__device__ void bwd_row(const T* logits, const unsigned int* targets, const float* gs, T* out,
                        unsigned int v, unsigned int col_offset) {
    const size_t row = blockIdx.x;
    const unsigned int t = targets[row];
    const T* x = logits + row * v;
    T* o = out + row * v;
    if (t == IGNORE) {
        for (unsigned int j = threadIdx.x; j < v; j += blockDim.x) store(o + j, 0.0f);
        return;
    }
    const float g = gs[3 * row], m = gs[3 * row + 1], lse = gs[3 * row + 2];
    const unsigned int local = t - col_offset;  // wraps to a huge value outside this block
    unsigned int start = 0;
    if (aligned4(x) && aligned4(o)) {  // as in the forward: four elements per load and store
        const unsigned int v4 = v / 4;
        for (unsigned int j = threadIdx.x; j < v4; j += blockDim.x) {
            float a, b, c, d;
            load4(x, j, a, b, c, d);
            // (x - max) - lse, in this order: x and max are close when logits are huge.
            a = -g * expf((a - m) - lse); b = -g * expf((b - m) - lse);
            c = -g * expf((c - m) - lse); d = -g * expf((d - m) - lse);
            const unsigned int k = local - 4 * j;  // wraps outside this group of four
            if (k == 0) a += g; else if (k == 1) b += g; else if (k == 2) c += g; else if (k == 3) d += g;
            store4(o, j, a, b, c, d);
        }
        start = 4 * v4;
    }
    for (unsigned int j = start + threadIdx.x; j < v; j += blockDim.x) {
        float d = -g * expf((to_f(x[j]) - m) - lse);
        if (j == local) d += g;
        store(o + j, d);
    }
}

extern "C" __global__ void token_logprob_fwd_f32(const float* x, const unsigned int* t, float* o,
                                                 unsigned int v) {
    fwd_row(x, t, o, v);
}
extern "C" __global__ void token_logprob_fwd_bf16(const unsigned short* x, const unsigned int* t,
                                                  float* o, unsigned int v) {
    fwd_row(x, t, o, v);
}
extern "C" __global__ void token_logprob_bwd_f32(const float* x, const unsigned int* t,
                                                 const float* gs, float* o, unsigned int v,
                                                 unsigned int col_offset) {
    bwd_row(x, t, gs, o, v, col_offset);
}
extern "C" __global__ void token_logprob_bwd_bf16(const unsigned short* x, const unsigned int* t,
                                                  const float* gs, unsigned short* o,
                                                  unsigned int v, unsigned int col_offset) {
    bwd_row(x, t, gs, o, v, col_offset);
}
